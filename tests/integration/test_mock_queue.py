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


POISSON = """
[run]
duration = "20s"
warmup = "1s"
workers = 1
[target.mock]
routes = [{routes}]
[load]
rate = 1000
arrivals = "poisson"
concurrency = 400
{requests}
[[models]]
model = "uvloop"
engine = "fast"
"""
STATIONS = 40


def test_poisson_arrivals_at_half_capacity_wait_as_md1_theory(tmp_path):
    """Open model with Poisson arrivals at half of each station's capacity: forty M/D/1
    stations of 20 ms (50 req/s each), fed 25 req/s each -- a random pick of the request
    thins a Poisson stream into independent Poisson streams -- so the mean wait is
    Pollaczek-Khinchine's rho * s / (2 (1 - rho)) = 10 ms. Forty stations pool ~20,000
    waits: the sample mean's spread is ~3% of it (simulated), so 10% holds at over 3
    sigma. The station times arrivals as the mock reads them, so the generator's
    schedule is what is tested. Why 20 ms and not 2: on this two-core machine the
    generator's sends jitter by a few ms (the OS time-slices the load process with the
    coordinator, the worker and the mock; timers fire on millisecond ticks), and at a
    4 ms service that jitter alone added 10% to the wait (arrival times stamped by a raw
    server); at 20 ms it is within 2%. ( Users enough that a send never waits for a free
    one (~30 in flight on average, 400 users): with 50, the tail of the waits ran them
    out, sends waited and bunched, and the wait came out 50% high.)"""
    routes = ", ".join(f'{{ path = "/q{i}", queue = {{ servers = 1, service_ms = 20, '
                       f'dist = "fixed", max_queue = 100000 }} }}' for i in range(STATIONS))
    requests = "".join(f'[[requests]]\nname = "q{i}"\npath = "/q{i}"\n'
                       for i in range(STATIONS))
    path = write_scenario(tmp_path / "poisson.toml",
                          POISSON.format(routes=routes, requests=requests))
    proc = run_harness("run", str(path), "--out", str(tmp_path / "out"), "--quiet",
                       timeout=120)
    assert proc.returncode == 0, proc.stderr
    meta = load_meta(proc.stdout.strip().splitlines()[-1])
    queues = [meta["mockserver_stats"]["queues"][f"/q{i}"] for i in range(STATIONS)]
    served = sum(q["served"] for q in queues)
    assert served > 18_000 and all(q["rejected"] == 0 for q in queues)
    wait_ms = sum(q["wait_ms_mean"] * q["served"] for q in queues) / served
    rate = served / 21 / STATIONS            # per station, warm-up included
    rho = rate * 0.020
    assert rho == pytest.approx(0.5, rel=0.03)
    assert wait_ms == pytest.approx(rho * 20 / (2 * (1 - rho)), rel=0.10)
