"""A capacity search as a person watches it: the dashboard shows the search live (the
steps so far, the bracket) while the run goes on, then report.html leads with the
latency-throughput curve -- the same chart code in both, looked at in headless Chromium."""

from __future__ import annotations

import asyncio
import html
import json
import time
from pathlib import Path

import pandas as pd

from tests.conftest import run_harness, write_scenario
from tests.devtools import PageWatch, chromium, in_page, open_page
from tests.integration.test_dashboard import start_run, state
from tests.integration.test_report import _browse

SEARCH = """
[run]
workers = 1
[target.mock]
queue = { servers = 2, service_ms = 2, dist = "fixed", max_queue = 100000 }
[load]
concurrency = 20
[[requests]]
name = "q"
path = "/"
[[models]]
model = "uvloop"
engine = "fast"
[capacity]
slo = { p99_ms = "< 1000", error_rate = "< 0.01" }
start_rate = 250
max_rate = 20000
step = "1s"
step_warmup = "300ms"
precision = 0.1
max_steps = 8
"""


def test_the_search_live_and_in_the_report(tmp_path: Path):
    scenario = write_scenario(tmp_path / "search.toml", SEARCH)
    proc, base = start_run(scenario, tmp_path, "127.0.0.1:0")
    looked: dict[str, object] = {}

    async def work(call, sid: str) -> None:
        await open_page(call, sid, base)

        async def value(expression: str):
            got = await call("Runtime.evaluate", sid, returnByValue=True,
                             expression=expression)
            return got["result"].get("value")

        # the search in progress: two steps on the page's curve and in its table
        deadline = time.monotonic() + 60
        while (await value("document.querySelectorAll('#capacity canvas').length") or 0) < 1 \
                or (await value("parseInt((document.querySelector('#capacity "
                                "table.capacity tbody td:last-child') || {}).textContent)"
                                " || 0")) < 2:
            assert time.monotonic() < deadline, "the dashboard never drew the search"
            await asyncio.sleep(0.2)
        looked["live_state"] = await asyncio.to_thread(state, base)
        looked["live_text"] = await value("document.getElementById('capacity').innerText")

    async def watched(ws_url: str) -> PageWatch:
        watch = PageWatch()
        await in_page(ws_url, watch, work)
        return watch

    try:
        with chromium() as ws_url:
            watch = asyncio.run(watched(ws_url))
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
    assert watch.errors == []
    live = looked["live_state"]["capacity"]
    mine = live["models"][0]
    assert mine["label"] == "uvloop-fast" and len(mine["points"]) >= 2
    # each point: achieved req/s, p50, p99, passed, offered, reason
    assert all(p[4] in (250, 500, 1000, 2000, 1500, 1250, 1125, 1062.5, 1187.5, 1093.75)
               for p in mine["points"]), mine["points"]
    assert live["slo_ms"] == {"p99_ms": 1000.0}
    assert "uvloop-fast" in looked["live_text"]
    assert looked["live_state"]["verdict"] is None   # steps are not models to compare

    run_dir = Path(out.strip().splitlines()[-1])
    meta = json.loads((run_dir / "meta.json").read_text())
    answer = meta["capacity"]["uvloop-fast"]
    # (the answer itself is test_capacity.py's: one-second steps beside a busy suite
    # may well be client-bound, which the page must show as faithfully)
    assert answer["line"].startswith("uvloop-fast")
    steps = pd.read_csv(run_dir / "capacity.csv")
    # the report: the curve leads, with the search's every step and answer as its data
    page = (run_dir / "report.html").read_text()
    assert page.index('id="capacity"') < page.index("<h2>Summary</h2>")
    data = json.loads(page.split('id="report-data">')[1].split("</script>")[0])
    curve = data["capacity"]
    assert [m["label"] for m in curve["models"]] == ["uvloop-fast"]
    points = curve["models"][0]["points"]
    assert len(points) == len(steps)
    assert sorted(p[4] for p in points) == sorted(steps["offered"])
    assert [p[0] for p in points] == sorted(p[0] for p in points)
    assert curve["models"][0]["capacity_rps"] == answer["capacity_rps"]
    with chromium() as ws_url:
        png, errors, requests, drawn = asyncio.run(
            _browse((run_dir / "report.html").resolve().as_uri(), ws_url))
    assert errors == [] and requests == []
    # the capacity curve and its table, beside each step's two charts and the distribution
    assert drawn["canvases"] >= 2 and drawn["width"] <= 1280
    assert 'class="grid capacity"' not in page   # drawn by the page's script, not inlined
    assert html.escape(answer["line"]) in page
    # `harness report` rebuilds the same page from the files alone
    again = run_harness("report", str(run_dir))
    assert again.returncode == 0, again.stderr
    rebuilt = (run_dir / "report.html").read_text()
    assert json.loads(rebuilt.split('id="report-data">')[1].split("</script>")[0])[
        "capacity"] == curve
