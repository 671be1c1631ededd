"""Injected faults: each kind happens at its probability and shows in the stats."""

from __future__ import annotations

import http.client
import json
import socket
import time

import pytest

from tests.conftest import Mock


def put_faults(mock: Mock, faults: dict, route: dict | None = None) -> None:
    config: dict = {"faults": faults}
    if route:
        config["routes"] = [route]
    status, body = mock.get_json("/_mock/config", "PUT", json.dumps(config).encode())
    assert status == 200, body


def one_request(mock: Mock, path: str = "/") -> tuple[str, float]:
    """Returns the outcome: a status code, 'reset', 'closed' or 'malformed'."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection(mock.host, mock.port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return str(resp.status), time.perf_counter() - start
    except http.client.RemoteDisconnected:  # a subclass of ConnectionResetError: first
        return "closed", time.perf_counter() - start
    except ConnectionResetError:
        return "reset", time.perf_counter() - start
    except (http.client.BadStatusLine, http.client.HTTPException):
        return "malformed", time.perf_counter() - start
    finally:
        conn.close()


def test_error_probability(mock: Mock):
    put_faults(mock, {"error": {"p": 0.3, "status": 503}})
    outcomes = [one_request(mock)[0] for _ in range(400)]
    share = outcomes.count("503") / len(outcomes)
    assert 0.2 < share < 0.4
    assert set(outcomes) == {"200", "503"}
    assert mock.stats()["faults"]["error"] == outcomes.count("503")


@pytest.mark.parametrize("kind, outcome", [("reset", "reset"), ("malformed", "malformed")])
def test_connection_faults(mock: Mock, kind: str, outcome: str):
    put_faults(mock, {kind: 1.0})
    assert one_request(mock)[0] == outcome
    assert mock.stats()["faults"][kind] == 1


def test_hang_is_bounded(mock: Mock):
    put_faults(mock, {"hang": {"p": 1.0, "ms": 300}})
    outcome, elapsed = one_request(mock)
    assert outcome == "closed" and 0.29 < elapsed < 3


def test_spike_and_slow_body_per_route(mock: Mock):
    put_faults(mock, {}, {"path": "/slow/*", "body_bytes": 2000,
                          "faults": {"slow_body": {"p": 1.0, "bytes_per_s": 10000},
                                     "spike": {"p": 1.0, "ms": 100}}})
    outcome, elapsed = one_request(mock, "/slow/x")
    assert outcome == "200" and 0.28 < elapsed < 3  # 100 ms spike + 2000 B at 10 kB/s
    assert one_request(mock, "/fast")[1] < 0.1       # the route's faults stay on the route
    faults = mock.stats()["faults"]
    assert faults == {"slow_body": 1, "spike": 1}


def test_server_keeps_serving_after_faults(mock: Mock):
    put_faults(mock, {"reset": 0.5})
    outcomes = {one_request(mock)[0] for _ in range(40)}
    assert outcomes == {"200", "reset"}
    with socket.create_connection(("127.0.0.1", mock.port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
