"""The dashboard's board (live/board.py) fed as the coordinator feeds it -- closed
intervals of real HDR histograms, progress calls -- read as the web thread reads it: the
points, the totals, thresholds crossed so far (Aggregated and per request, worded as at
the end), and /metrics' counts and buckets."""

from __future__ import annotations

import numpy as np
import pytest

from harness.core.outcome import ModelResult
from harness.live.board import BUCKETS_S, LiveBoard
from harness.live.metrics import registry_for, render
from harness.scenario import parse_scenario
from harness.stats import IntervalStats, record_batch


def scenario():
    return parse_scenario({
        "run": {"duration": "3s"}, "load": {"concurrency": 7},
        "requests": [{"name": "fast", "path": "/"}, {"name": "slow", "path": "/s"}],
        "models": [{"model": "thread"}, {"model": "asyncio"}],
        "thresholds": {"error_rate": "< 0.5", "slow": {"p99_ms": "< 20"},
                       "fast": {"p99_ms": "< 20"}}}, "t.toml")


def cell(values_us: list[int], errors: int = 0) -> IntervalStats:
    stats = IntervalStats()
    record_batch(stats.hist, np.array(values_us))
    if errors:
        stats.errors["unexpected_status:503"] = errors
    return stats


def test_board_points_totals_thresholds_and_metrics():
    board = LiveBoard(scenario(), expect_workers=1)
    result = ModelResult("thread", 0)
    board.progress(result, 0.5, {"workers": [{"name": "w", "host": "h", "alive": True,
                                              "sent": 3}]})
    for second in range(3):   # slow gets slower: crosses its 20 ms at the third second
        board.interval(result, second, {"fast": cell([1000] * 90, errors=3),
                                        "slow": cell([5000 + 20000 * (second == 2)] * 10)},
                       1.0)
    snap = board.snapshot()
    thread, other = snap["models"]
    assert thread["state"] == "running" and thread["users"] == 7 and other["state"] == \
        "pending"
    assert [p[0] for p in thread["points"]] == [0, 1, 2]
    assert thread["points"][0][1:3] == [100.0, 3.0]             # req/s, failures/s
    assert thread["totals"]["requests"] == 300 and thread["totals"]["failures"] == 9
    assert thread["errors"] == [["unexpected_status", 503, 9]]   # the status named
    assert snap["crossed_by"] == {"thread": snap["thresholds"]}   # marked on its row
    slow = cell([5000] * 20 + [25000] * 10).hist.get_value_at_percentile(99) / 1000
    assert snap["thresholds"] == [f"thread: [slow] p99_ms < 20 (was {slow:.4g})"]
    assert snap["workers"][0]["name"] == "w"
    # a live update carries only the points not yet sent
    assert board.snapshot({"thread": 2})["models"][0]["points"] == thread["points"][2:]

    text = render(registry_for(board)).decode()
    assert 'loadharness_requests_total{model="thread",name="fast"} 270.0' in text
    assert 'loadharness_failures_total{kind="unexpected_status",model="thread",name="fast"}' \
        ' 9.0' in text
    # the slow request's 20 values of 5 ms and 10 of 25 ms: le is "at or below"
    for le, n in (("0.0025", 0), ("0.005", 20), ("0.01", 20), ("0.025", 30), ("0.05", 30)):
        assert f'loadharness_latency_seconds_bucket{{le="{le}",model="thread",' \
               f'name="slow"}} {n:.1f}' in text
    assert len(BUCKETS_S) == 14
    assert 'loadharness_run_state{loadharness_run_state="running"} 1.0' in text


def test_a_model_that_ends_and_the_verdict_once_two_have():
    board = LiveBoard(scenario(), expect_workers=1)
    for index, label in enumerate(("thread", "asyncio-aiohttp")):
        result = ModelResult(label, index)
        board.progress(result, 0.1, {})
        for second in range(3):
            cells = {"fast": cell([1000 + 500 * index] * 50), "slow": cell([2000] * 5)}
            board.interval(result, second, cells, 1.0)
            result.take()   # what the sink does: the model's own merged cells
            for name, c in cells.items():
                result.by_name.setdefault(name, IntervalStats()).add(c)
        result.totals = {0: {"elapsed_s": 3.0, "sent": 165, "cpu_s": 0.3}}
        board.progress(result, 3.0, {"ended": True})
        snap = board.snapshot()
        assert snap["models"][index]["state"] == "done" and snap["current"] is None
        assert (snap["verdict"] is None) == (index == 0)
    assert "thread" in snap["verdict"]["line"]
    assert snap["verdict"]["columns"][0] == "model"
    board.finished("/tmp/run", "ok")
    assert board.snapshot()["state"] == "done"


@pytest.mark.parametrize("mode", ["open"])
def test_open_model_has_no_users_gauge(mode):
    sc = parse_scenario({"run": {"duration": "1s"}, "load": {"mode": mode, "rate": 10},
                         "requests": [{"name": "a", "path": "/"}],
                         "models": [{"model": "thread"}]}, "t.toml")
    board = LiveBoard(sc, expect_workers=1)
    board.progress(ModelResult("thread", 0), 0.1, {})
    assert board.snapshot()["models"][0]["users"] == 0


def test_a_capacity_search_on_the_board():
    """Steps come as results past the models (`MODEL @ LOAD`): each is its model's row,
    its points start over (and a page that had the last step's points is sent them anew),
    the search so far is in the state, and no verdict compares steps as models."""
    from harness.capacity.drive import Found
    from harness.capacity.judge import Step
    sc = parse_scenario({
        "load": {"concurrency": 4}, "requests": [{"name": "q", "path": "/"}],
        "models": [{"model": "uvloop", "engine": "fast"}, {"model": "asyncio"}],
        "capacity": {"slo": {"p99_ms": "< 100"}, "over": "concurrency"}}, "t.toml")
    board = LiveBoard(sc, expect_workers=1)
    first, second = ModelResult("uvloop-fast @ 1 users", 2), ModelResult(
        "uvloop-fast @ 2 users", 3)
    board.progress(first, 0.5, {})
    for s in range(3):
        board.interval(first, s, {"q": cell([1000] * 50)}, 1.0)
    assert board.snapshot()["models"][0]["users"] == 1
    board.progress(first, 3.0, {"ended": True})
    found = Found("uvloop-fast", "concurrency", "p99_ms < 100")
    found.steps.append(Step("uvloop-fast", 0, 1, 50.0, 1, 1, 1, 1, 1, 1, 1, 0.0, 0.0, 0, 3,
                            "", passed=True))
    board.searched(found)
    board.progress(second, 0.5, {})
    board.interval(second, 0, {"q": cell([1000] * 90)}, 1.0)
    snap = board.snapshot({"uvloop-fast": 3})
    fast, other = snap["models"]
    assert fast["users"] == 2 and fast["first"] == 0 and [p[0] for p in fast["points"]] == [0]
    assert fast["totals"]["requests"] == 90          # the step's own row
    assert other["state"] == "pending"
    assert snap["capacity"]["slo_ms"] == {"p99_ms": 100.0}
    assert snap["capacity"]["models"][0]["points"] == [[50.0, 1.0, 1.0, True, 1.0, ""]]
    assert snap["verdict"] is None


def test_a_model_that_measured_its_own_client_says_so_on_its_row():
    """Once a model has ended, its load processes' signals (their DONE) decide, by the
    rule of summary.csv's `valid`, whether its row says it measured its own client."""
    board = LiveBoard(scenario(), expect_workers=1)
    burnt, fine = ModelResult("thread", 0), ModelResult("asyncio", 1)
    burnt.totals = {0: {"sent": 10, "saturated_s": 3, "sampled_s": 4,
                        "saturated_by": {"cpu": 2, "starved": 1}}}
    fine.totals = {0: {"sent": 10, "saturated_s": 1, "sampled_s": 4,
                       "saturated_by": {"cpu": 1}}}
    for result in (burnt, fine):
        board.progress(result, 3.0, {"ended": True})
    thread, asyncio_row = board.snapshot()["models"]
    assert thread["client"].startswith("thread saturated its client in 3 of 4 measured")
    assert "another job on its host) in 1 s" in thread["client"]
    assert asyncio_row["client"] == ""   # one second in four: under the quarter
