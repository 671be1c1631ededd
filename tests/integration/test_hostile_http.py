"""The mockserver under hostile HTTP: every case here broke it once (issue 14) and each
test was watched failing before the fix. A malformed request gets a 4xx, never a 5xx;
everyone else is still served; /health answers afterwards."""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.conftest import Mock, start_mockserver


def test_ten_thousand_pipelined_requests_in_one_write(shared_mock: Mock):
    """270 KB of pipelined requests in one write: every one answered, in order (it used to
    answer ~4,700, then a false 431 and a reset)."""
    n = 10_000
    batch = b"".join(b"GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(n))
    with socket.create_connection(("127.0.0.1", shared_mock.port), timeout=20) as sock:
        sock.sendall(batch)
        data = b""
        deadline = time.monotonic() + 30
        while data.count(b"HTTP/1.1 ") < n and time.monotonic() < deadline:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    assert data.count(b"HTTP/1.1 200 ") == n, data.count(b"HTTP/1.1 ")
    assert b" 431 " not in data


@pytest.fixture
def guarded() -> Mock:
    """A mockserver with a short request timeout and a small connection cap."""
    server = start_mockserver("--seed", "3")
    status, _ = server.get_json("/_mock/config", "PUT", json.dumps(
        {"limits": {"request_timeout_s": 1.0, "max_connections": 200}}).encode())
    assert status == 200
    yield server
    server.stop()


SLOW_STARTS = [b"GET /sl", b"GET /sl HTTP/1.1\r\nHost: x\r\nX-Half: ab",
               b"POST /sl HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf",
               b"POST /sl HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nhal"]


def health_ok(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return sock.recv(4096).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def test_slowloris_is_timed_out_and_capped(guarded: Mock):
    """Connections stuck in a partial request (half a request line, header, body or
    chunk) are closed after limits.request_timeout_s; beyond limits.max_connections the
    oldest waiting connection makes room, so /health answers under any number of slow
    clients."""
    socks = []
    try:
        for i in range(600):  # three times the cap
            s = socket.create_connection(("127.0.0.1", guarded.port), timeout=5)
            s.sendall(SLOW_STARTS[i % len(SLOW_STARTS)])
            socks.append(s)
            if i % 100 == 99:
                assert health_ok(guarded.port), i
        assert health_ok(guarded.port)
        stats = guarded.stats()
        assert stats["connections_open"] <= 200 + 1
        assert stats["connections_evicted"] >= 600 - 200 - 10
        time.sleep(3)  # past the request timeout: every partial request is closed
        stats = guarded.stats()
        # the one left open is this stats request's own
        assert stats["connections_open"] == 1 and stats["request_timeouts"] >= 1, stats
    finally:
        for s in socks:
            s.close()
    assert health_ok(guarded.port)


@pytest.mark.parametrize("header", ["1e308", ";;", "fixed;ms=1e308", "uniform;max_ms=1e308",
                                    "pareto;scale=1e308;alpha=1", "lognormal;median=1",
                                    "nan", "-5", "x" * 5000])
def test_bad_latency_header_is_a_400_naming_it(shared_mock: Mock, header: str):
    with socket.create_connection(("127.0.0.1", shared_mock.port), timeout=5) as sock:
        sock.sendall(f"GET / HTTP/1.1\r\nHost: x\r\nX-Mock-Latency: {header}\r\n"
                     "Connection: close\r\n\r\n".encode())
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
    assert b"X-Mock-Latency" in reply or b"latency" in reply


@pytest.mark.parametrize("latency", [
    {"dist": "fixed", "ms": 1e308}, {"dist": "uniform", "min_ms": 0, "max_ms": 1e308},
    {"dist": "pareto", "scale_ms": 1e308, "alpha": 1.5}, {"dist": "lognormal",
                                                           "median_ms": 1, "p99_ms": 1e300},
    {"dist": "exponential", "mean_ms": 1e12}, {"dist": "normal", "mean_ms": 1, "sd_ms": 1e10},
])
def test_latency_over_the_cap_is_refused(mock: Mock, latency: dict):
    status, body = mock.get_json("/_mock/config", "PUT",
                                 json.dumps({"default": {"latency": latency}}).encode())
    assert status == 400 and body["field"].startswith("default.latency"), body
    status, config = mock.get_json("/_mock/config")  # still valid JSON, unchanged
    assert status == 200 and config["default"]["latency"] == {"dist": "fixed", "ms": 0}


def test_deep_json_is_a_400(mock: Mock):
    deep = b"[" * 100_000 + b"]" * 100_000
    status, body = mock.get_json("/_mock/config", "PUT", deep)
    assert status == 400 and body["field"] == "body", body


def test_admin_is_not_locked_out_by_its_own_limits(mock: Mock):
    status, _ = mock.get_json("/_mock/config", "PUT",
                              json.dumps({"limits": {"max_body_bytes": 0}}).encode())
    assert status == 200
    status, config = mock.get_json("/_mock/config", "PUT",
                                   json.dumps({"limits": {"max_body_bytes": 1000}}).encode())
    assert status == 200 and config["limits"]["max_body_bytes"] == 1000


def test_routes_are_capped(mock: Mock):
    """100,000 routes blocked the event loop for 20 s and made every unmatched request
    scan them all: the number is capped (README), the cap is a 400 naming `routes`."""
    too_many = [{"path": f"/r{i}/*"} for i in range(1001)]
    status, body = mock.get_json("/_mock/config", "PUT", json.dumps({"routes": too_many})
                                 .encode())
    assert status == 400 and body["field"] == "routes", body
    most = [{"path": f"/r{i}/*"} for i in range(1000)]
    status, _ = mock.get_json("/_mock/config", "PUT", json.dumps({"routes": most}).encode())
    assert status == 200
    with socket.create_connection(("127.0.0.1", mock.port), timeout=5) as sock:
        sock.sendall(b"GET /unmatched HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("text", [b"\xff\xfe[default]\n", b"a = " + b"[" * 5000 + b"]" * 5000],
                         ids=["not-utf8", "deep"])
def test_mockserver_config_file_errors_are_exit_2(tmp_path, text: bytes):
    """`mockserver --config` gave the same two tracebacks as scenarios (exit 1)."""
    import subprocess

    from tests.conftest import BIN
    path = tmp_path / "routes.toml"
    path.write_bytes(text)
    proc = subprocess.run([str(BIN / "mockserver"), "--port", "0", "--config", str(path)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "routes.toml" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
