"""Garbage request heads and bodies never take the server down: /health answers after each."""

from __future__ import annotations

import socket

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Mock

METHODS = st.sampled_from([b"GET", b"POST", b"HEAD", b"PUT", b"BREW", b"", b"G\x00T"])
TOKENS = st.binary(max_size=64)
HEADER = st.tuples(st.binary(min_size=0, max_size=40), st.binary(max_size=200)).map(
    lambda kv: kv[0] + b": " + kv[1])


@st.composite
def garbage_request(draw) -> bytes:
    """Mostly HTTP-shaped, with random damage: that reaches deeper into the parser than noise."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=2000))
    line = draw(METHODS) + b" " + draw(TOKENS) + b" " + draw(
        st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/x", b""]))
    headers = draw(st.lists(HEADER, max_size=8))
    framing = draw(st.sampled_from([b"", b"Content-Length: 5", b"Content-Length: -1",
                                    b"Transfer-Encoding: chunked", b"Content-Length: 99999999"]))
    body = draw(st.binary(max_size=500))
    sep = draw(st.sampled_from([b"\r\n", b"\n", b"\r"]))
    return sep.join([line, *headers, framing, b"", body])


def send(port: int, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
        except (ConnectionResetError, BrokenPipeError, TimeoutError):
            pass


def health(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return sock.recv(4096)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
@given(garbage_request())
def test_garbage_never_crashes(shared_mock: Mock, data: bytes):
    send(shared_mock.port, data)
    assert shared_mock.proc.poll() is None
    assert health(shared_mock.port).startswith(b"HTTP/1.1 200")
