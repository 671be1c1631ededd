"""The verdict: winner by requests/s among healthy models, the workload's kind, and a
measured reason when the lesson's rule loses."""

from __future__ import annotations

import pandas as pd

from harness.reports.verdict import decide, format_verdict
from harness.scenario import parse_scenario

COLUMNS = ["model", "name", "rps", "p50_ms", "p99_ms", "failures", "error_rate", "cpu_pct",
           "rss_peak_mb"]


def scenario(**model_opts):
    return parse_scenario({
        "run": {"duration": "2s"}, "load": {"concurrency": 8},
        "requests": [{"name": "a", "path": "/"}],
        "models": [{"model": "thread", **model_opts}, {"model": "asyncio", **model_opts},
                   {"model": "process", **model_opts}]}, "t.toml")


def summary(rows):
    return pd.DataFrame([dict(zip(COLUMNS, r, strict=True)) for r in rows])


def test_fast_io_rule_agrees_when_threads_win():
    s = summary([("thread", "Aggregated", 5000, 1.2, 3.0, 0, 0.0, 90, 40),
                 ("asyncio-aiohttp", "Aggregated", 4000, 1.4, 3.5, 0, 0.0, 95, 45)])
    v = decide(scenario(), s)
    assert v.workload == "io-fast" and v.winner == "thread" and v.agrees
    assert "-> agrees" in format_verdict(v)


def test_disagreement_says_why_with_numbers():
    s = summary([("thread", "Aggregated", 4000, 1.8, 9.5, 0, 0.0, 100, 40),
                 ("asyncio-aiohttp", "Aggregated", 5000, 1.4, 3.5, 0, 0.0, 80, 45)])
    v = decide(scenario(), s)
    assert v.winner == "asyncio-aiohttp" and not v.agrees
    # 25% more rps; CPU per request: 80% / 5000 = 160 us vs 100% / 4000 = 250 us
    assert "25% more requests/s than thread" in v.reason
    assert "p99 3.50 vs 9.50 ms" in v.reason and "160 vs 250 us per request" in v.reason
    assert "-> disagrees" in format_verdict(v)


def test_unhealthy_models_cannot_win_and_slow_io_is_asyncio():
    s = summary([("thread", "Aggregated", 900, 100.0, 300.0, 0, 0.0, 30, 80),
                 ("asyncio-aiohttp", "Aggregated", 9000, 101.0, 310.0, 500, 0.05, 40, 60),
                 ("process-asyncio", "Aggregated", 1800, 100.0, 290.0, 0, 0.0, 60, 90)])
    v = decide(scenario(), s)
    assert v.workload == "io-slow" and v.winner == "process-asyncio" and not v.agrees


def test_cpu_work_makes_the_workload_cpu_bound():
    s = summary([("thread", "Aggregated", 60, 20.0, 40.0, 0, 0.0, 99, 40),
                 ("process-thread", "Aggregated", 120, 8.0, 20.0, 0, 0.0, 190, 80)])
    v = decide(scenario(cpu_work=100000), s)
    assert v.workload == "cpu-bound" and v.winner == "process-thread" and v.agrees


def test_one_model_has_no_verdict():
    s = summary([("thread", "Aggregated", 60, 20.0, 40.0, 0, 0.0, 99, 40)])
    assert decide(scenario(), s) is None


def test_a_tie_on_throughput_goes_to_the_cheaper_client():
    # the target sets the pace: 2% apart is a tie, and asyncio spends 60 us per request
    # (30% / 5000) against the thread model's 180 us (90% / 5100)
    s = summary([("thread", "Aggregated", 5100, 4.4, 19.0, 0, 0.0, 90, 40),
                 ("asyncio-aiohttp", "Aggregated", 5000, 4.4, 19.5, 0, 0.0, 30, 45),
                 ("sync", "Aggregated", 200, 4.4, 19.0, 0, 0.0, 5, 30)])
    v = decide(scenario(), s)
    assert v.winner == "asyncio-aiohttp" and not v.agrees
    assert "tied within 5% on requests/s with thread" in v.reason
    assert "2% fewer requests/s than thread" in v.reason
    assert "60 vs 176 us per request" in v.reason


def test_cpu_does_not_decide_a_tie_it_did_not_measure():
    s = summary([("thread", "Aggregated", 5100, 4.4, 19.0, 0, 0.0, 90, 40),
                 ("locust", "Aggregated", 5000, 4.4, 19.5, 0, 0.0, 0, 45)])
    v = decide(scenario(), s)
    assert v.winner == "thread" and v.agrees and "tied" not in v.reason


def test_a_handshake_per_request_over_tls_is_its_own_workload():
    """handshake = "per-request" against HTTPS is judged as tls-handshakes (rule: threads,
    OpenSSL releases the GIL in the handshake), whatever its median; plain HTTP with a
    connection per request stays an I/O workload."""
    raw = {"run": {"duration": "2s"}, "load": {"concurrency": 8},
           "target": {"handshake": "per-request", "mock": {"tls": True}},
           "requests": [{"name": "a", "path": "/"}],
           "models": [{"model": "thread"}, {"model": "asyncio"}]}
    s = summary([("thread", "Aggregated", 800, 17.0, 50.0, 0, 0.0, 100, 40),
                 ("asyncio-aiohttp", "Aggregated", 400, 37.0, 70.0, 0, 0.0, 90, 45)])
    v = decide(parse_scenario(raw, "t.toml"), s)
    assert v.workload == "tls-handshakes" and v.expected == "threads" and v.agrees
    raw["target"] = {"handshake": "per-request", "url": "http://127.0.0.1:8080"}
    assert decide(parse_scenario(raw, "t.toml"), s).workload == "io-fast"


def test_an_untested_rule_is_untested_not_disagreement():
    """No threads model ran on an io-fast workload: the rule could not be tested, so the
    verdict says "untested" and agrees is None (meta.json: verdict_agrees null)."""
    raw = {"run": {"duration": "2s"}, "load": {"concurrency": 8},
           "requests": [{"name": "a", "path": "/"}],
           "models": [{"model": "asyncio"}, {"model": "sync"}]}
    s = summary([("asyncio-aiohttp", "Aggregated", 5000, 1.4, 3.5, 0, 0.0, 80, 45),
                 ("sync", "Aggregated", 400, 1.3, 3.0, 0, 0.0, 20, 30)])
    v = decide(parse_scenario(raw, "t.toml"), s)
    assert v.agrees is None and v.winner == "asyncio-aiohttp"
    line = format_verdict(v).splitlines()[-1]
    assert "threads -> untested (no threads model ran" in line and "disagrees" not in line


def test_no_healthy_model_crowns_no_winner():
    """Every model failed 20% of its requests: no winner, and the verdict says so."""
    s = summary([("thread", "Aggregated", 5000, 1.2, 3.0, 1000, 0.2, 90, 40),
                 ("asyncio-aiohttp", "Aggregated", 6000, 1.4, 3.5, 1200, 0.2, 95, 45)])
    v = decide(scenario(), s)
    assert v.winner is None and v.agrees is None and not v.table["winner"].any()
    line = format_verdict(v).splitlines()[-1]
    assert line.startswith("verdict: no winner: no model was healthy")
    assert "thread 20.0%" in line and " * " not in format_verdict(v)
