"""The queueing mock through real sockets: a closed run with many more users than servers
measures servers / service time (the station's known capacity), and /_mock/stats says how
deep the queue ran and how long requests waited."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import load_meta, run_harness, write_scenario

QUEUED = """
[run]
duration = "4s"
warmup = "1s"
workers = 1
[target.mock]
queue = {{ servers = 4, service_ms = {service_ms}, dist = "fixed", max_queue = 10000 }}
[load]
concurrency = 8
[[requests]]
name = "q"
path = "/"
[[models]]
model = "uvloop"
engine = "fast"
"""


def test_a_closed_run_measures_the_stations_capacity(tmp_path):
    """8 users, 4 servers of 20 ms: 200 req/s whatever the client could do (the client
    is nowhere near its limit at 200/s, so a 2% band holds on a busy machine too). Few
    users on purpose: a closed run's count takes in the requests in flight at its end
    (folded into the last second), +users/duration -- 1% here, 5% with 40 users."""
    path = write_scenario(tmp_path / "queue.toml", QUEUED.format(service_ms=20))
    proc = run_harness("run", str(path), "--out", str(tmp_path / "out"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    agg = pd.read_csv(run_dir / "summary.csv").query("name == 'Aggregated'").iloc[0]
    assert agg["rps"] == pytest.approx(200, rel=0.02)
    # each request waits for the 4 ahead of it: one round of 20 ms, then its own 20 ms
    assert agg["p50_ms"] == pytest.approx(40, rel=0.10)
    queue = load_meta(str(run_dir))["mockserver_stats"]["queues"]["default"]
    assert queue["capacity_rps"] == pytest.approx(200)
    assert queue["servers"] == 4 and queue["rejected"] == 0
    assert queue["wait_ms_mean"] == pytest.approx(20, rel=0.15)


def test_a_route_queue_through_the_admin_api_and_its_metrics(mock):
    """PUT /_mock/config puts a station on a route; a burst beyond servers + max_queue
    gets 503s; /_mock/stats and /_mock/metrics report it. (A second of service: the
    six requests of the burst arrive well within it, on a busy machine too.)"""
    import concurrent.futures
    import json
    import urllib.error
    import urllib.request

    new = {"routes": [{"path": "/slow", "queue": {"servers": 1, "service_ms": 1000,
                                                  "max_queue": 2}}]}
    status, _ = mock.get_json("/_mock/config", "PUT", json.dumps(new).encode())
    assert status == 200

    def get(_: int) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{mock.port}/slow", timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        statuses = sorted(pool.map(get, range(6)))
    # one served at once, two waiting, three turned away at once
    assert statuses == [200, 200, 200, 503, 503, 503]
    _, stats = mock.get_json("/_mock/stats")
    q = stats["queues"]["/slow"]
    assert (q["served"], q["rejected"], q["capacity_rps"]) == (3, 3, pytest.approx(1.0))
    assert q["wait_ms_max"] == pytest.approx(2000, rel=0.1)
    with urllib.request.urlopen(f"http://127.0.0.1:{mock.port}/_mock/metrics") as r:
        text = r.read().decode()
    assert 'mock_queue_rejected_total{route="/slow"} 3.0' in text
    assert 'mock_queue_depth{route="/slow"}' in text
