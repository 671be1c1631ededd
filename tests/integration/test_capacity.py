"""The capacity search through real processes, against the queueing mock whose capacity
the test knows (2 servers x 2 ms = 1,000 req/s: low enough that aiohttp on one core of a
busy two-core machine has room; at 2,000 req/s it sent over 1% of its requests 10 ms late
here, and the search rightly called that step client-bound): the search finds it, says
the target was the limit, and writes every step; with one sync user the generator is the
limit and the search says so instead of a capacity."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import run_harness, write_scenario

SEARCH = """
[run]
workers = {workers}
[target.mock]
queue = {{ servers = 2, service_ms = 2, dist = "fixed", max_queue = 100000 }}
[load]
concurrency = 50
[[requests]]
name = "q"
path = "/"
{models}
[capacity]
slo = {{ p99_ms = "< 1000", error_rate = "< 0.01" }}
start_rate = {start}
max_rate = 20000
step = "2s"
step_warmup = "500ms"
precision = 0.05
max_steps = 12
"""


def search(tmp_path: Path, models: str, start: int, workers: int = 1
           ) -> tuple[dict, pd.DataFrame, str]:
    path = write_scenario(tmp_path / f"capacity{workers}.toml",
                          SEARCH.format(models=models, start=start, workers=workers))
    proc = run_harness("run", str(path), "--out", str(tmp_path / f"out{workers}"),
                       timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    meta = json.loads((run_dir / "meta.json").read_text())
    return meta["capacity"], pd.read_csv(run_dir / "capacity.csv"), proc.stdout


def test_the_search_finds_the_stations_capacity(tmp_path):
    found, steps, out = search(tmp_path, '[[models]]\nmodel = "uvloop"\nengine = "fast"\n'
                                         '[[models]]\nmodel = "asyncio"\n', start=500)
    for label in ("uvloop-fast", "asyncio-aiohttp"):
        mine = found[label]
        assert mine["capacity_rps"] == pytest.approx(1000, rel=0.05), (label, mine)
        assert mine["limited_by"] == "target", (label, mine)
        assert mine["high"] is not None and (mine["high"] - mine["low"]) / mine["low"] <= 0.05
        rows = steps[steps["model"] == label]
        # every step judged on the merged histogram: the passing ones held the SLO
        assert (rows[rows["passed"]]["p99_ms"] < 1000).all()
        assert set(rows[~rows["passed"]]["reason"]) <= {"target", "slo:p99_ms"}
        assert f"{label} holds" in out
    assert out.index("capacity: uvloop-fast") < out.index("capacity: asyncio-aiohttp") or \
        found["asyncio-aiohttp"]["capacity_rps"] >= found["uvloop-fast"]["capacity_rps"]


def test_one_sync_user_is_client_bound_not_a_capacity(tmp_path):
    """One user sending one request at a time cannot offer 1,000 req/s when each takes
    2 ms and more: it falls short with its one user, and the search says the generator
    was the limit."""
    found, steps, out = search(tmp_path, '[[models]]\nmodel = "sync"\n', start=1000)
    sync = found["sync"]
    assert sync["limited_by"] == "client" and sync["capacity_rps"] is None, sync
    assert sync["client_bound"]
    assert "client" in set(steps["reason"].dropna())
    assert "sync: " in out and "client-bound" in out


SWEEP = """
[run]
workers = 1
[target.mock]
queue = { servers = 4, service_ms = 2, dist = "fixed", max_queue = 100000 }
[[requests]]
name = "q"
path = "/"
[[models]]
model = "uvloop"
engine = "fast"
[capacity]
slo = { p99_ms = "< 1000" }
over = "concurrency"
step = "2s"
step_warmup = "500ms"
max_steps = 10
"""


def test_the_concurrency_sweep_fits_the_usl_to_the_station(tmp_path):
    """Users 1, 2, 4, ... to the plateau, then bisected; the Universal Scalability Law
    fitted to the steps puts X_max at the station's 2,000 req/s, and every step of a
    closed run with no think time keeps Little's law (N = X * mean latency)."""
    path = write_scenario(tmp_path / "sweep.toml", SWEEP)
    proc = run_harness("run", str(path), "--out", str(tmp_path / "out"), timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    found = json.loads((run_dir / "meta.json").read_text())["capacity"]["uvloop-fast"]
    steps = pd.read_csv(run_dir / "capacity.csv")
    assert list(steps["offered"][:3]) == [1, 2, 4]
    assert found["usl"]["x_max"] == pytest.approx(2000, rel=0.10), found
    assert found["usl"]["r2"] >= 0.9 and found["usl"]["n_star"] > 4
    assert found["capacity_rps"] == pytest.approx(2000, rel=0.10)
    assert not steps["little_flagged"].any(), steps[["offered", "littles_law"]]
    assert "USL peak N*" in proc.stdout


def test_compare_says_how_far_two_capacities_moved(tmp_path):
    """The same search against a station of half the capacity: `harness compare` puts the
    two capacities side by side, the change beyond both searches' brackets."""
    runs = []
    for servers in (2, 1):
        text = SEARCH.format(models='[[models]]\nmodel = "uvloop"\nengine = "fast"\n',
                             start=250, workers=1).replace("servers = 2", f"servers = {servers}") \
            .replace('step = "2s"', 'step = "1s"').replace("precision = 0.05",
                                                            "precision = 0.1")
        path = write_scenario(tmp_path / f"s{servers}.toml", text)
        proc = run_harness("run", str(path), "--out", str(tmp_path / "out"), "--quiet",
                           timeout=600)
        assert proc.returncode == 0, proc.stderr
        runs.append(proc.stdout.strip().splitlines()[-1])
    proc = run_harness("compare", *runs)
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("capacity uvloop-fast"))
    assert "beyond the searches' brackets" in line, line
    change = float(line.split("(")[1].split("%")[0])
    assert change == pytest.approx(-50, abs=8), line


def test_two_workers_find_the_capacity_one_finds(tmp_path):
    """The same search from one worker and from two (each step's rate split between
    them, each step judged on their merged histograms): the same capacity within 5%."""
    fast = '[[models]]\nmodel = "uvloop"\nengine = "fast"\n'
    one = search(tmp_path, fast, start=500, workers=1)[0]["uvloop-fast"]
    two, steps, _ = search(tmp_path, fast, start=500, workers=2)
    two = two["uvloop-fast"]
    assert one["limited_by"] == two["limited_by"] == "target", (one, two)
    assert two["capacity_rps"] == pytest.approx(one["capacity_rps"], rel=0.05), (one, two)
    assert two["capacity_rps"] == pytest.approx(1000, rel=0.05)


TIGHT = """
[run]
workers = 1
[target.mock]
queue = { servers = 4, service_ms = 2, dist = "exponential", max_queue = 100000 }
[load]
arrivals = "poisson"
concurrency = 50
[[requests]]
name = "q"
path = "/"
[[models]]
model = "uvloop"
engine = "fast"
[capacity]
slo = { p99_ms = "< 25" }
start_rate = 250
max_rate = 1900
step = "3s"
step_warmup = "500ms"
precision = 0.05
max_steps = 12
"""


def simulated_p99_ms(rate: float, servers: int, service_s: float, n: int, seed: int) -> float:
    """M/M/k by hand (not the mock's code): Poisson arrivals, exponential service, FIFO
    to the first free of k servers; the p99 of wait + service after a warm-up."""
    import heapq
    import random
    rng = random.Random(seed)
    free, t, times = [0.0] * servers, 0.0, []
    for i in range(n + n // 5):
        t += rng.expovariate(rate)
        start = max(t, heapq.heappop(free))
        end = start + rng.expovariate(1 / service_s)
        heapq.heappush(free, end)
        if i >= n // 5:
            times.append(end - t)
    times.sort()
    return 1000 * times[int(0.99 * len(times))]


def test_a_tight_slo_finds_the_rate_a_simulation_of_the_queue_predicts(tmp_path):
    """M/M/4 of 2 ms (capacity 2,000 req/s) under Poisson arrivals, SLO p99 < 25 ms: the
    rate where p99 reaches 25 ms is short of 2,000 (~1,780 req/s), and the search finds
    it within 10%. The test simulates the same queue itself to know that rate; a search
    simulated with 3 s steps lands within -6%..+8% of it. Why 25 ms and not 15: the
    loopback, the mock and the generator add their own ~1 ms at low load and ~3.5 ms at
    1,500 req/s to p99 on this two-core machine; at 15 ms (~1,650 req/s, where p99 is
    still flat) that moved the answer 13%, where p99 climbs steeply it moves it ~2%.
    max_rate 1,900 (95% of capacity): a step at 2,000 is the station's own limit, where
    the queue grows without bound -- there the generator sent 3% of its sends late here,
    which makes a failed step the client's (noted for the next round)."""
    lo, hi = 500.0, 2000.0
    while hi - lo > 5:
        mid = (lo + hi) / 2
        if simulated_p99_ms(mid, 4, 0.002, 200_000, seed=7) < 25:
            lo = mid
        else:
            hi = mid
    predicted = lo
    path = write_scenario(tmp_path / "tight.toml", TIGHT)
    proc = run_harness("run", str(path), "--out", str(tmp_path / "out"), timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    found = json.loads((run_dir / "meta.json").read_text())["capacity"]["uvloop-fast"]
    assert found["limited_by"].startswith("slo:p99"), found
    assert found["capacity_rps"] == pytest.approx(predicted, rel=0.10), (found, predicted)


def test_littles_law_flags_steps_whose_users_waited_on_something_else(tmp_path):
    """The same sweep with 10 ms of think time after each request: users spend most of
    their time thinking, not waiting on the target, so N is far above throughput x mean
    latency (about (R + Z) / R) and every step is flagged."""
    text = SWEEP.replace("[[requests]]", '[load]\nthink_time = "10ms"\n[[requests]]') \
        .replace("max_steps = 10", "max_steps = 3").replace('step = "2s"', 'step = "1s"')
    path = write_scenario(tmp_path / "think.toml", text)
    proc = run_harness("run", str(path), "--out", str(tmp_path / "out"), "--quiet",
                       timeout=300)
    assert proc.returncode == 0, proc.stderr
    steps = pd.read_csv(Path(proc.stdout.strip().splitlines()[-1]) / "capacity.csv")
    assert list(steps["offered"]) == [1, 2, 4]
    assert steps["little_flagged"].all(), steps[["offered", "littles_law"]]
    assert (steps["littles_law"] > 2).all()


def test_a_killed_search_is_recovered_with_its_steps_and_answer_so_far(tmp_path):
    """kill -9 of `harness run` two steps into a search: `harness report` rebuilds the
    steps from the journal, judged as the live run judged them, and says the search was
    cut short (exit 3, partial) -- never a capacity it did not finish finding."""
    import signal
    import subprocess

    from tests.conftest import HARNESS
    path = write_scenario(tmp_path / "killed.toml", SEARCH.format(
        models='[[models]]\nmodel = "uvloop"\nengine = "fast"\n', start=250, workers=1))
    proc = subprocess.Popen([HARNESS, "run", str(path), "--out", str(tmp_path / "out")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    run_dir = Path(proc.stdout.readline().split(": ", 1)[1].strip())
    judged = []
    while len(judged) < 2:
        line = proc.stderr.readline()
        assert line, "the search ended before two steps"
        if line.startswith("capacity: uvloop-fast @"):
            judged.append(line.split(": ")[1])
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    report = run_harness("report", str(run_dir))
    assert report.returncode == 3, report.stdout + report.stderr
    steps = pd.read_csv(run_dir / "capacity.csv")
    assert list(steps["offered"][:2]) == [250, 500]
    assert [f"uvloop-fast @ {o:g} rps" for o in steps["offered"][:2]] == judged
    found = json.loads((run_dir / "meta.json").read_text())["capacity"]["uvloop-fast"]
    assert found["stopped_by"] in ("interrupted", "aborted"), found
    assert found["high"] is None and found["low"] >= 250
