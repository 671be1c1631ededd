"""The mockserver's HTTP/2 front end under the known HTTP/2 attacks, each from a raw h2
client in this test: the offender gets GOAWAY with the right code and is closed, the
mock counts it under `h2.offenders`, and /health answers within 100 ms afterwards."""

from __future__ import annotations

import json
import socket
import time

import h2.config
import h2.connection
import h2.events
import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import ContinuationFrame, HeadersFrame, PingFrame, SettingsFrame

from tests.conftest import Mock, raw_exchange, start_mockserver

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
REQUEST = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "x")]


@pytest.fixture(scope="module")
def target() -> Mock:
    server = start_mockserver("--seed", "5")
    status, _ = server.get_json("/_mock/config", "PUT", json.dumps(
        {"limits": {"request_timeout_s": 1.0}}).encode())
    assert status == 200
    yield server
    server.stop()


def _client() -> h2.connection.H2Connection:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    return conn


def _attack(mock: Mock, data: bytes, *, wait: float = 10.0) -> tuple[int | None, float]:
    """Send `data` on a new h2c connection (after the client preface and SETTINGS) and
    read until the mock closes it: (the GOAWAY's error code, seconds until closed)."""
    started = time.monotonic()
    received = raw_exchange(mock.port, data, timeout=wait)
    return _goaway_code(received), time.monotonic() - started


def _goaway_code(received: bytes) -> int | None:
    """The error code of the GOAWAY frame among what the server sent, read frame by frame
    (a parser of our own: h2's would refuse the answers to streams it did not open)."""
    pos = 0
    while pos + 9 <= len(received):
        length = int.from_bytes(received[pos:pos + 3], "big")
        if received[pos + 3] == 7:   # GOAWAY: last stream id, then the error code
            return int.from_bytes(received[pos + 13:pos + 17], "big")
        pos += 9 + length
    return None


def _health_ms(mock: Mock) -> float:
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", mock.port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        head = sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 200"), head
    return 1000 * (time.perf_counter() - started)


def _offenders(mock: Mock) -> dict[str, int]:
    return mock.stats()["h2"]["offenders"]


def _check(mock: Mock, kind: str, data: bytes, code: int) -> None:
    before = _offenders(mock).get(kind, 0)
    got, _ = _attack(mock, data)
    assert got == code, (kind, got)
    assert _health_ms(mock) < 100, kind
    assert _offenders(mock).get(kind, 0) == before + 1, (kind, _offenders(mock))


def test_rapid_reset_is_sent_away(target: Mock):
    """CVE-2023-44487: streams opened and reset at once, thousands a second."""
    conn = _client()
    for _ in range(2000):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, REQUEST, end_stream=True)
        conn.reset_stream(sid)
    _check(target, "rapid_reset", conn.data_to_send(), ErrorCodes.ENHANCE_YOUR_CALM)


def test_continuation_flood_is_sent_away(target: Mock):
    """A header block that never ends: CONTINUATION after CONTINUATION (2024's floods)."""
    conn = _client()
    data = conn.data_to_send()
    headers = HeadersFrame(1)
    headers.data = b"\x82\x84"
    data += headers.serialize()
    for _ in range(5000):
        frame = ContinuationFrame(1)
        frame.data = b"\x40\x01a\x01b"   # literal header a: b, with indexing
        data += frame.serialize()
    _check(target, "continuation_flood", data, ErrorCodes.ENHANCE_YOUR_CALM)


def test_settings_and_ping_floods_are_sent_away(target: Mock):
    conn = _client()
    settings = conn.data_to_send() + b"".join(SettingsFrame(0).serialize()
                                              for _ in range(5000))
    _check(target, "settings_flood", settings, ErrorCodes.ENHANCE_YOUR_CALM)
    conn = _client()
    pings = conn.data_to_send() + b"".join(PingFrame(0, b"%08d" % i).serialize()
                                           for i in range(5000))
    _check(target, "ping_flood", pings, ErrorCodes.ENHANCE_YOUR_CALM)


def test_streams_beyond_the_advertised_maximum_are_refused(target: Mock):
    """More open streams than SETTINGS_MAX_CONCURRENT_STREAMS (128): sent before the
    server's SETTINGS could stop our own h2 client from sending them."""
    conn = _client()
    for _ in range(300):
        conn.send_headers(conn.get_next_available_stream_id(), REQUEST, end_stream=False)
    _check(target, "too_many_streams", conn.data_to_send(), ErrorCodes.PROTOCOL_ERROR)


def test_a_header_list_beyond_the_limit_is_refused(target: Mock):
    """A header block small on the wire (HPACK's table repeats one header by index) that
    decodes to far more than SETTINGS_MAX_HEADER_LIST_SIZE (16 KiB)."""
    conn = _client()
    headers = REQUEST + [("x-repeat", "v" * 100)] * 400
    conn.send_headers(conn.get_next_available_stream_id(), headers, end_stream=True)
    data = conn.data_to_send()
    assert len(data) < 16384   # one HEADERS frame: no CONTINUATION to flood with
    _check(target, "header_list_too_large", data, ErrorCodes.ENHANCE_YOUR_CALM)


def test_a_zero_window_stall_is_closed_after_the_request_timeout(target: Mock):
    """A client that opens no window for our answer and never sends WINDOW_UPDATE holds
    the answer forever: closed after limits.request_timeout_s (1 s here)."""
    conn = _client()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    conn.send_headers(conn.get_next_available_stream_id(),
                      [(":method", "GET"), (":path", "/bytes/100000"), (":scheme", "http"),
                       (":authority", "x")], end_stream=True)
    before = _offenders(target).get("zero_window", 0)
    code, took = _attack(target, conn.data_to_send())
    assert code == ErrorCodes.ENHANCE_YOUR_CALM and 0.9 < took < 5, (code, took)
    assert _health_ms(target) < 100
    assert _offenders(target).get("zero_window", 0) == before + 1


def test_the_mock_still_serves_http2_after_every_attack(target: Mock):
    """After all of the above (in any order): a plain h2c request is answered."""
    conn = _client()
    conn.send_headers(1, REQUEST, end_stream=True)
    with socket.create_connection(("127.0.0.1", target.port), timeout=5) as sock:
        sock.sendall(conn.data_to_send())
        status = None
        deadline = time.monotonic() + 5
        while status is None and time.monotonic() < deadline:
            for event in conn.receive_data(sock.recv(65536)):
                if isinstance(event, h2.events.ResponseReceived):
                    status = dict(event.headers)[b":status"]
    assert status == b"200"
