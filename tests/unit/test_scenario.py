"""Scenario parsing: defaults, --set overrides, ${ENV}, stages, thresholds, job slicing."""

from __future__ import annotations

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
