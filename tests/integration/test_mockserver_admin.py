"""Admin API: validation, token rules, reset, and exact counts across processes."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
from pathlib import Path

from tests.conftest import Mock, start_mockserver

MOCKSERVER = str(Path(sys.executable).parent / "mockserver")


def hammer(mock: Mock, paths: list[str], connections: int) -> int:
    """Send every path on each of `connections` keep-alive connections; returns the count."""
    sent = []

    def one() -> None:
        conn = http.client.HTTPConnection(mock.host, mock.port, timeout=10)
        n = 0
        for path in paths:
            conn.request("GET", path)
            conn.getresponse().read()
            n += 1
        conn.close()
        sent.append(n)

    threads = [threading.Thread(target=one) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(sent)


def test_config_get_put_and_validation(mock: Mock):
    status, config = mock.get_json("/_mock/config")
    assert status == 200 and config["default"]["status"] == 200
    new = {"default": {"status": 201, "body_bytes": 7}}
    status, body = mock.get_json("/_mock/config", "PUT", json.dumps(new).encode())
    assert status == 200 and body["default"]["status"] == 201
    conn = http.client.HTTPConnection(mock.host, mock.port, timeout=5)
    conn.request("GET", "/x")
    resp = conn.getresponse()
    assert resp.status == 201 and len(resp.read()) == 7
    # Bad input: 400 naming the field; the old config stays.
    for bad, field in (({"default": {"status": "x"}}, "default.status"),
                       ({"routes": [{"path": "nope"}]}, "routes[0].path"),
                       ({"faults": {"error": 2}}, "faults.error.p")):
        status, body = mock.get_json("/_mock/config", "PUT", json.dumps(bad).encode())
        assert status == 400 and body["field"] == field, body
    status, body = mock.get_json("/_mock/config", "PUT", b"{not json")
    assert status == 400 and body["field"] == "body"
    assert mock.get_json("/_mock/config")[1]["default"]["status"] == 201
    assert mock.get_json("/_mock/nothing")[0] == 404
    assert mock.get_json("/_mock/stats", "POST", b"")[0] == 405


def test_stats_count_exactly_and_reset(mock: Mock):
    assert mock.stats()["requests_total"] == 0
    sent = hammer(mock, ["/", "/status/404", "/bytes/10", "/health"], 4)
    stats = mock.stats()
    assert stats["requests_total"] == sent - 4  # /health is never counted
    assert stats["by_status"] == {"200": 8, "404": 4}
    assert stats["by_route"] == {"default": 4, "/status/{code}": 4, "/bytes/{n}": 4}
    assert stats["connections_total"] >= 4 and stats["bytes_out"] > 0
    assert mock.get_json("/_mock/reset", "POST", b"")[0] == 200
    assert mock.stats()["requests_total"] == 0


def test_two_processes_count_exactly():
    mock = start_mockserver("--processes", "2")
    try:
        sent = hammer(mock, ["/", "/delay/1"] * 50, 16)
        stats = mock.stats()
        assert stats["processes"] == 2 and stats["missing_processes"] == 0
        assert stats["requests_total"] == sent == 1600
        # Config and reset reach both processes.
        mock.get_json("/_mock/config", "PUT", b'{"default": {"status": 202}}')
        statuses = set()
        for _ in range(8):
            conn = http.client.HTTPConnection(mock.host, mock.port, timeout=5)
            conn.request("GET", "/")
            statuses.add(conn.getresponse().status)
            conn.close()
        assert statuses == {202}
        mock.get_json("/_mock/reset", "POST", b"")
        assert mock.stats()["requests_total"] == 0
        assert mock.stop() == 0
    finally:
        mock.proc.kill()


def test_off_loopback_needs_a_token():
    proc = subprocess.run([MOCKSERVER, "--host", "0.0.0.0", "--port", "0"],
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 2 and "--admin-token" in proc.stderr
    assert "Traceback" not in proc.stderr
    mock = start_mockserver("--admin-token", "s3cret", host="0.0.0.0")
    try:
        local = Mock(mock.proc, "127.0.0.1", mock.port)
        assert local.get_json("/_mock/stats")[0] == 401
        assert local.get_json("/_mock/stats", headers={"Authorization": "Bearer wrong"})[0] == 401
        status, body = local.get_json("/_mock/stats",
                                      headers={"Authorization": "Bearer s3cret"})
        assert status == 200 and body["requests_total"] == 0
    finally:
        mock.stop()


def test_bad_config_file_exits_2(tmp_path):
    bad = tmp_path / "routes.toml"
    bad.write_text("[default]\nlatency = { dist = 'fixed', ms = -3 }\n")
    proc = subprocess.run([MOCKSERVER, "--port", "0", "--config", str(bad)],
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 2
    assert "routes.toml: default.latency.ms" in proc.stderr and "Traceback" not in proc.stderr


def _scrape(conn: http.client.HTTPConnection, path: str) -> bytes:
    conn.request("GET", path)
    resp = conn.getresponse()
    assert resp.status == 200, resp.status
    return resp.read()


def test_metrics_equal_stats_across_processes():
    """/_mock/metrics (Prometheus text, parsed by prometheus_client's own parser) says what
    /_mock/stats says: requests by route and status, faults, connections, auth; both
    summed over the server's processes. One kept-alive admin connection for both scrapes,
    so no connection is opened between them."""
    from prometheus_client.parser import text_string_to_metric_families
    mock = start_mockserver("--processes", "2")
    try:
        mock.get_json("/_mock/config", "PUT", json.dumps({
            "faults": {"error": {"p": 0.2, "status": 503}}}).encode())
        sent = hammer(mock, ["/", "/bytes/50", "/status/404"] * 20, 6)
        import httpx  # and a few over HTTP/2 (h2c), counted by protocol
        with httpx.Client(http1=False, http2=True, trust_env=False) as h2c:
            for _ in range(5):
                h2c.get(mock.url + "/")
        sent += 5
        conn = http.client.HTTPConnection(mock.host, mock.port, timeout=10)
        stats = json.loads(_scrape(conn, "/_mock/stats"))
        text = _scrape(conn, "/_mock/metrics").decode()
        conn.close()
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(text)
                   for s in family.samples}
        assert samples[("mock_requests_total", ())] == stats["requests_total"] == sent
        for route, n in stats["by_route"].items():
            assert samples[("mock_requests_by_route_total", (("route", route),))] == n
        for status, n in stats["by_status"].items():
            assert samples[("mock_responses_total", (("status", status),))] == n
        assert stats["faults"] and all(
            samples[("mock_faults_total", (("kind", kind),))] == n
            for kind, n in stats["faults"].items())
        for key in ("connections_total", "auth_ok", "auth_rejected", "tls_handshakes",
                    "malformed_requests"):
            assert samples[(f"mock_{key.removesuffix('_total')}_total", ())] == stats[key]
        assert samples[("mock_processes", ())] == 2
        for protocol, n in stats["by_protocol"].items():
            assert samples[("mock_requests_by_protocol_total", (("protocol", protocol),))] == n
        assert stats["by_protocol"]["HTTP/2"] == 5 == stats["h2"]["streams"]
        for key in ("connections", "streams", "goaways"):
            assert samples[(f"mock_h2_{key}_total", ())] == stats["h2"][key]
        # the stats answer went out between the two scrapes: bytes only grow
        assert samples[("mock_bytes_out_total", ())] >= stats["bytes_out"] > 0
    finally:
        mock.stop()
