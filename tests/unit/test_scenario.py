"""Scenario parsing: defaults, --set overrides, ${ENV}, stages, thresholds, job slicing."""

from __future__ import annotations

import re
import time

import pytest

from harness.clients.pacing import Pacer
from harness.control.plan import make_job
from harness.errors import ScenarioError
from harness.scenario import apply_set, parse_scenario

BASE = {
    "run": {"duration": "2s", "workers": 3},
    "load": {"concurrency": 10},
    "requests": [{"name": "a", "path": "/x", "weight": 3}, {"name": "b", "path": "/y"}],
    "models": [{"model": "thread"}, {"model": "uvloop", "engine": "fast"}],
    "thresholds": {"p99_ms": "< 100", "a": {"error_rate": "<= 0.5"}},
}


def test_defaults_and_labels():
    sc = parse_scenario(BASE, "t.toml")
    assert sc.duration_s == 2 and sc.mode == "closed" and sc.concurrency == 10
    assert [m.label for m in sc.models] == ["thread", "uvloop-fast"]
    assert [str(t) for t in sc.thresholds] == ["p99_ms < 100", "[a] error_rate <= 0.5"]


def test_set_overrides_and_env(monkeypatch):
    raw = {**BASE, "requests": [{"name": "a", "path": "${LH_PATH:-/fallback}"}]}
    monkeypatch.setenv("LH_PATH", "/from-env")
    apply_set(raw, "load.rate=250", "t.toml")
    apply_set(raw, "models.1.engine=aiohttp", "t.toml")
    sc = parse_scenario(raw, "t.toml")
    assert sc.mode == "open" and sc.rate == 250
    assert sc.models[1].engine == "aiohttp" and sc.requests[0].path == "/from-env"
    with pytest.raises(ScenarioError, match="no list item 7"):
        apply_set(raw, "models.7.engine=fast", "t.toml")


def test_job_slices_add_up():
    sc = parse_scenario({**BASE, "run": {"requests": 1001, "workers": 3}}, "t.toml")
    jobs = [make_job(sc, sc.models[0], "http://127.0.0.1:1", i, 3) for i in range(3)]
    assert sum(j.concurrency for j in jobs) == 10
    assert sum(j.total_requests for j in jobs) == 1001
    assert len({j.seed for j in jobs}) == 3


def test_stages_ramp_linearly():
    raw = {**BASE, "run": {"workers": 1}, "load": {
        "mode": "open", "stages": [{"duration": "10s", "target": 100},
                                   {"duration": "10s", "target": 100}]}}
    sc = parse_scenario(raw, "t.toml")
    job = make_job(sc, sc.models[0], "http://127.0.0.1:1", 0, 1)
    pacer = Pacer(job, t0=time.perf_counter() + 1000.0)
    base = pacer.t0
    assert pacer.target(base) == 0
    assert pacer.target(base + 5) == pytest.approx(50)
    assert pacer.target(base + 15) == pytest.approx(100)
    assert pacer.t_end == base + 20
    # The open schedule follows the ramp: about 500 sends in the first 10 s.
    times = []
    while (t := pacer.next_intended()) is not None and t < base + 10:
        times.append(t)
    assert len(times) == pytest.approx(500, rel=0.05)


def test_poisson_arrivals_have_exponential_gaps_at_the_rate():
    """`arrivals = "poisson"`: the schedule's gaps pass a Kolmogorov-Smirnov test for the
    exponential at the rate (evenly spaced ones would fail it at once), their count over
    the window is the rate's, the pacer counts what it intended in the measured window,
    and `skipped` replays the same draws the schedule would have made."""
    from scipy import stats

    raw = {**BASE, "run": {"duration": "100s", "warmup": "1s", "workers": 1},
           "load": {"rate": 200, "arrivals": "poisson"}}
    sc = parse_scenario(raw, "t.toml")
    job = make_job(sc, sc.models[0], "http://127.0.0.1:1", 0, 1)
    pacer = Pacer(job, t0=time.perf_counter() + 1000.0)
    times = []
    while (t := pacer.next_intended()) is not None and t < pacer.t0 + 60:
        times.append(t)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert stats.kstest(gaps, "expon", args=(0, 1 / 200)).pvalue > 0.001
    assert len(times) == pytest.approx(200 * 60, rel=0.05)
    in_window = sum(1 for t in times if t >= pacer.t_measure) + 1   # the one past 60 s
    assert pacer.intended == in_window
    # skipped(now): the sends owed before `now` that were not made, from the same draws
    owed = pacer.skipped(pacer.t0 + 70)
    again = []
    while (t := pacer.next_intended()) is not None and t < pacer.t0 + 70:
        again.append(t)
    assert owed == len(again) > 1500
    even = Pacer(make_job(parse_scenario({**raw, "load": {"rate": 200}}, "t.toml"),
                          sc.models[0], "http://127.0.0.1:1", 0, 1), t0=pacer.t0)
    even_times = [even.next_intended() for _ in range(2000)]
    even_gaps = [b - a for a, b in zip(even_times, even_times[1:], strict=False)]
    assert stats.kstest(even_gaps, "expon", args=(0, 1 / 200)).pvalue < 1e-6


@pytest.mark.parametrize("load, where", [
    ({"rate": 10, "arrivals": "bursty"}, "[load].arrivals"),
    ({"concurrency": 5, "arrivals": "poisson"}, "[load].arrivals"),
])
def test_arrivals_refused_naming_the_key(load, where):
    with pytest.raises(ScenarioError, match=re.escape(where)):
        parse_scenario({**BASE, "load": load}, "t.toml")
