"""Garbage request heads and bodies never take the server down: /health answers after each."""

from __future__ import annotations

import socket
import time

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


PATHS = st.sampled_from([b"/", b"/bytes/10", b"/status/404", b"/status/201", b"/echo",
                         b"/drip?bytes=10&duration_ms=5", b"/delay/3", b"/health",
                         b"/_mock/stats", b"/x?y=%zz", b"/" + b"a" * 300])
EXTRA = st.sampled_from([b"", b"X-Mock-Latency: 1", b"X-Mock-Latency: ;;",
                         b"X-Mock-Latency: fixed;ms=1e308", b"X-Mock-Latency: pareto;scale=9e9",
                         b"Connection: close", b"Expect: 100-continue", b"Host:",
                         b"Transfer-Encoding: gzip, chunked", b"Content-Length: 3, 4"])


@st.composite
def pipeline(draw) -> list[bytes]:
    """A few requests back to back, some valid, some damaged, with bodies."""
    out = []
    for _ in range(draw(st.integers(1, 6))):
        body = draw(st.binary(max_size=40))
        method = draw(st.sampled_from([b"GET", b"POST", b"HEAD", b"PUT"]))
        head = [method + b" " + draw(PATHS) + b" HTTP/1.1", b"Host: x", draw(EXTRA)]
        if method in (b"POST", b"PUT"):
            if draw(st.booleans()):
                head.append(b"Content-Length: %d" % len(body))
            else:
                head.append(b"Transfer-Encoding: chunked")
                body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
        else:
            body = b""
        request = b"\r\n".join(h for h in head if h) + b"\r\n\r\n" + body
        if draw(st.integers(0, 9)) == 0:  # damage: a byte flipped somewhere
            at = draw(st.integers(0, len(request) - 1))
            request = request[:at] + bytes([draw(st.integers(0, 255))]) + request[at + 1:]
        out.append(request)
    return out


def exchange(port: int, data: bytes, cuts: list[int], settle: float = 0.0) -> bytes:
    """Send `data` in pieces split at `cuts` (split writes), read what comes back.
    `settle`: wait this long before shutting down the write side (a test of the server
    closing first)."""
    pieces, last = [], 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        pieces.append(data[last:cut])
        last = cut
    pieces.append(data[last:])
    reply = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            for piece in pieces:
                if piece:
                    sock.sendall(piece)
            if settle:
                time.sleep(settle)
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:   # ENOTCONN: the server closed first (it refused what it read);
                pass          # what it answered before is still to be read and judged
            while chunk := sock.recv(65536):
                reply += chunk
    except (ConnectionResetError, BrokenPipeError, TimeoutError):
        pass                  # the server's close: judge what it answered before it
    return reply


def test_exchange_accepts_the_servers_close():
    """The fuzz test's own client: a server that answers, then resets the connection before
    the client is done, must not fail the client (shutdown raised ENOTCONN and hypothesis
    reported a flaky failure with a new example each time); the answer is kept."""
    import struct
    import threading
    answer = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def answer_then_reset() -> None:
        conn, _ = listener.accept()
        conn.sendall(answer)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()   # RST

    thread = threading.Thread(target=answer_then_reset)
    thread.start()
    try:
        reply = exchange(listener.getsockname()[1], b"", [], settle=0.3)
    finally:
        thread.join(5)
        listener.close()
    assert reply in (b"", answer)   # a reset may discard the unread answer: never a raise


def test_pipelined_split_hostile_requests_get_no_5xx_and_log_no_exception():
    """Hypothesis over request heads, bodies, pipelining and split writes against one
    mockserver: no answer is a 5xx (client input is never the server's error), the server
    logs no exception, and /health answers afterwards."""
    from tests.conftest import start_mockserver
    server = start_mockserver("--seed", "5")
    tried = []

    @settings(max_examples=200, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(pipeline(), st.lists(st.integers(0, 10_000), max_size=4))
    def fuzz(requests: list[bytes], cuts: list[int]) -> None:
        tried.append(len(requests))
        reply = exchange(server.port, b"".join(requests), cuts)
        statuses = [line.split(b" ", 2)[1] for line in reply.split(b"\r\n")
                    if line.startswith(b"HTTP/1.1 ") and len(line.split(b" ", 2)) > 1]
        assert not [s for s in statuses if s.startswith(b"5")], reply[:500]

    try:
        fuzz()
        assert len(tried) >= 200 and sum(tried) > 400  # it ran, and pipelined
        assert health(server.port).startswith(b"HTTP/1.1 200")
    finally:
        server.stop()
    log = server.proc.stderr.read()
    assert "Traceback" not in log and "Exception" not in log, log[-3000:]
