"""HTTP/1.1 behaviour of a real mockserver process over real sockets."""

from __future__ import annotations

import http.client
import json
import re
import socket
import time

from tests.conftest import Mock, raw_exchange, start_mockserver


def get(mock: Mock, path: str, method: str = "GET", body: bytes | None = None,
        headers: dict | None = None) -> tuple[http.client.HTTPResponse, bytes]:
    conn = http.client.HTTPConnection(mock.host, mock.port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp, data


def test_routes(shared_mock: Mock):
    resp, body = get(shared_mock, "/anything/at/all")
    assert resp.status == 200 and len(body) == 2
    resp, body = get(shared_mock, "/status/503")
    assert resp.status == 503
    resp, body = get(shared_mock, "/bytes/100000")
    assert len(body) == 100000
    assert get(shared_mock, "/bytes/100000")[1] == body  # deterministic
    resp, body = get(shared_mock, "/cpu/1000")
    assert int(body) == sum(i * i for i in range(1000))
    resp, body = get(shared_mock, "/echo?x=1", "POST", b"payload", {"X-Test": "yes"})
    echo = json.loads(body)
    assert echo["method"] == "POST" and echo["path"] == "/echo" and echo["query"] == "x=1"
    assert echo["body"] == "payload" and ["X-Test", "yes"] in echo["headers"]
    resp, body = get(shared_mock, "/health")
    assert resp.status == 200 and json.loads(body) == {"status": "ok"}
    for bad in ("/delay/abc", "/status/42", "/bytes/-1", "/cpu/x"):
        assert get(shared_mock, bad)[0].status == 400, bad


def test_delay_and_header_override(shared_mock: Mock):
    start = time.perf_counter()
    get(shared_mock, "/delay/150")
    assert 0.149 <= time.perf_counter() - start < 1.0
    start = time.perf_counter()
    get(shared_mock, "/", headers={"X-Mock-Latency": "fixed;ms=120"})
    assert 0.119 <= time.perf_counter() - start < 1.0
    resp, body = get(shared_mock, "/", headers={"X-Mock-Latency": "gamma;k=1"})
    assert resp.status == 400 and b"X-Mock-Latency" in body


def test_drip_is_chunked_and_paced(shared_mock: Mock):
    start = time.perf_counter()
    resp, body = get(shared_mock, "/drip?bytes=500&duration_ms=300")
    elapsed = time.perf_counter() - start
    assert resp.getheader("Transfer-Encoding") == "chunked"
    assert len(body) == 500 and 0.29 <= elapsed < 2.0


def test_pipelined_requests_answered_in_order(shared_mock: Mock):
    # The first is slow and the second instant: the answers must still come in order.
    data = (b"GET /delay/200 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /bytes/3 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /status/404 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    out = raw_exchange(shared_mock.port, data)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3})", out)
    assert statuses == [b"200", b"200", b"404"]
    assert out.index(b"Content-Length: 2") < out.index(b"Content-Length: 3")


def test_chunked_request_body(shared_mock: Mock):
    data = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    out = raw_exchange(shared_mock.port, data)
    assert json.loads(out.split(b"\r\n\r\n", 1)[1])["body"] == "hello world"


def test_head_has_length_but_no_body(shared_mock: Mock):
    out = raw_exchange(shared_mock.port,
                       b"HEAD /bytes/1000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"Content-Length: 1000" in out and out.endswith(b"\r\n\r\n")


def test_http10_closes_and_connection_close(shared_mock: Mock):
    out = raw_exchange(shared_mock.port, b"GET /bytes/5 HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200") and b"Connection: close" in out
    assert out.endswith(b"\r\n\r\n" + out[-5:])
    # HTTP/1.0 with keep-alive stays open for a second request.
    with socket.create_connection(("127.0.0.1", shared_mock.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        first = sock.recv(4096)
        assert b"Connection: close" not in first
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")


def test_keep_alive_many_requests_one_connection(shared_mock: Mock):
    conn = http.client.HTTPConnection(shared_mock.host, shared_mock.port, timeout=5)
    for _ in range(50):
        conn.request("GET", "/bytes/10")
        assert conn.getresponse().read() is not None
    conn.close()


def test_limits_answer_and_close_while_others_are_served(shared_mock: Mock):
    cases = [
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 40000 + b"\r\n\r\n", b"431"),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\nabc", b"413"),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
         + b"200000\r\n" + b"a" * 1100000, b"413"),
        (b"GARBAGE\x00\x01 / HTTP/9\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n", b"400"),
    ]
    # A keep-alive client stays served throughout.
    bystander = http.client.HTTPConnection(shared_mock.host, shared_mock.port, timeout=5)
    for data, status in cases:
        out = raw_exchange(shared_mock.port, data)  # reads until the server closes
        assert out.split(b" ")[1] == status, out[:80]
        assert b"Connection: close" in out
        bystander.request("GET", "/")
        assert bystander.getresponse().read() is not None
    bystander.close()


def test_endless_header_line_is_cut_off(shared_mock: Mock):
    with socket.create_connection(("127.0.0.1", shared_mock.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nX-Endless: ")
        out = b""
        try:
            for _ in range(20):
                sock.sendall(b"b" * 16384)
            out = sock.recv(4096)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert out == b"" or out.startswith(b"HTTP/1.1 431")


def test_idle_timeout_closes_keepalive_connections(tmp_path):
    config = tmp_path / "limits.json"
    config.write_text('{"limits": {"idle_timeout_s": 0.5}}')
    mock = start_mockserver("--config", str(config))
    try:
        with socket.create_connection(("127.0.0.1", mock.port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            start = time.perf_counter()
            assert sock.recv(4096) == b""  # closed by the server
            assert 0.4 <= time.perf_counter() - start < 3
    finally:
        mock.stop()


def test_sigterm_finishes_in_flight_and_exits_zero():
    mock = start_mockserver()
    with socket.create_connection(("127.0.0.1", mock.port), timeout=5) as sock:
        sock.sendall(b"GET /delay/500 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.1)
        mock.proc.terminate()
        out = sock.recv(4096)
        assert out.startswith(b"HTTP/1.1 200")
    assert mock.proc.wait(10) == 0


def _answer(sock: socket.socket) -> bytes:
    """One whole answer of a Content-Length reply (the default profile's)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head, re.I).group(1))
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_the_same_request_again_is_answered_and_counted_as_the_first():
    """The mock answers a read that repeats the last one -- a whole fast-path request --
    without its parser: each is counted, and a profile changed in between is obeyed (the
    repeat is answered by the new profile, never by the cached reply)."""
    mock = start_mockserver()
    try:
        request = b"GET /same HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n"
        with socket.create_connection((mock.host, mock.port), timeout=5) as sock:
            for _ in range(200):
                sock.sendall(request)
                assert _answer(sock).startswith(b"HTTP/1.1 200")
            assert mock.stats()["requests_total"] == 200
            status, config = mock.get_json("/_mock/config")
            config["default"]["status"] = 503
            assert mock.get_json("/_mock/config", "PUT", json.dumps(config).encode())[0] == 200
            for _ in range(3):
                sock.sendall(request)
                assert _answer(sock).startswith(b"HTTP/1.1 503")
            sock.sendall(request[:10])   # the same bytes, cut in two reads: parsed, the same
            time.sleep(0.05)
            sock.sendall(request[10:])
            assert _answer(sock).startswith(b"HTTP/1.1 503")
        assert mock.stats()["requests_total"] == 204
    finally:
        mock.stop()
