"""report.html from a real run: built by `harness run`, rebuilt by `harness report`, opened
in headless Chromium (rendered, no console error, no network request); the CSV files load
with pandas in one line with the right types."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest

from tests.conftest import run_harness
from tests.devtools import PageWatch, chromium, in_page, open_page

SCENARIO = """
[run]
duration = "2s"
warmup = "0.5s"
[target.mock]
latency = { dist = "lognormal", median_ms = 3, p99_ms = 15 }
faults = { error = { p = 0.05, status = 503 } }
[load]
concurrency = 5
[[requests]]
name = "home"
path = "/"
[[requests]]
name = "blob"
path = "/bytes/100"
[[models]]
model = "thread"
[[models]]
model = "uvloop"
engine = "fast"
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    path = tmp / "report.toml"
    path.write_text(SCENARIO)
    proc = run_harness("run", str(path), "--out", str(tmp), "--quiet")
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip().splitlines()[-1])


def test_run_builds_a_self_contained_report(run_dir: Path):
    page = (run_dir / "report.html").read_text()
    for heading in ("Summary", "Verdict", "Over time", "Latency distribution", "Errors", "Run"):
        assert f"<h2>{heading}</h2>" in page
    # the dashboard's chart code and uPlot inlined with the data: charts drawn in the page
    assert "uPlot" in page and 'id="report-data"' in page and "LH.latency" in page
    for chart in ('id="over-time"', 'id="distribution"', 'id="errors-chart"'):
        assert chart in page
    # what a person reads first leads: seven numbers per model; the rest behind a toggle
    lead = page.split("<h2>Summary</h2>")[1].split("<details>")[0]
    assert lead.count("<th>") == 8 and "<details><summary>" in page
    assert not re.search(r"(src|href)=[\"']https?://", page)  # nothing fetched from outside


def test_report_command(run_dir: Path, tmp_path: Path):
    (run_dir / "report.html").unlink()
    proc = run_harness("report", str(run_dir))
    assert proc.returncode == 0 and (run_dir / "report.html").exists()
    proc = run_harness("report", str(tmp_path))
    assert proc.returncode == 2 and "not a run directory" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_csv_round_trip_types(run_dir: Path):
    summary = pd.read_csv(run_dir / "summary.csv")
    assert summary["requests"].dtype == "int64" and summary["p99_ms"].dtype == "float64"
    assert pd.api.types.is_string_dtype(summary["model"]) and summary["sent"].dtype == "int64"
    assert list(summary.columns[:6]) == ["model", "name", "requests", "failures",
                                         "error_rate", "rps"]
    ts = pd.read_csv(run_dir / "timeseries.csv")
    assert ts["second"].dtype == "int64" and ts["rps"].dtype == "float64"
    errors = pd.read_csv(run_dir / "errors.csv")
    assert errors["count"].dtype == "int64" and set(errors["kind"]) == {"unexpected_status"}
    meta = json.loads((run_dir / "meta.json").read_text())
    agg = summary[summary["name"] == "Aggregated"]
    assert agg["failures"].sum() == errors["count"].sum()
    assert meta["requests_sent"] == meta["mockserver_stats"]["requests_total"]


async def _browse(url: str, ws_url: str) -> tuple[bytes, list[str], list[str], dict]:
    """Open `url` through the DevTools protocol; returns screenshot, console errors and
    the URLs of any network requests other than the page itself."""
    watch = PageWatch()

    async def work(call, sid: str) -> dict:
        await open_page(call, sid, url, height=2000)
        await asyncio.wait_for(watch.loaded, 30)
        await asyncio.sleep(0.5)
        got = await call("Runtime.evaluate", sid, returnByValue=True, expression=(
            "({canvases: document.querySelectorAll('canvas').length,"
            " width: document.documentElement.scrollWidth})"))
        return got["result"]["value"], await call("Page.captureScreenshot", sid, format="png")

    drawn, shot = await in_page(ws_url, watch, work)
    others = [u for u in watch.requests if u != url and not u.startswith("data:")]
    return base64.b64decode(shot["data"]), watch.errors, others, drawn


def test_report_renders_in_chromium(run_dir: Path):
    with chromium() as ws_url:
        url = (run_dir / "report.html").resolve().as_uri()
        png, errors, requests, drawn = asyncio.run(_browse(url, ws_url))
    (run_dir / "report.png").write_bytes(png)
    image = matplotlib.image.imread(io.BytesIO(png), format="png")
    assert image.shape[0] >= 1000 and image.std() > 0.05  # rendered, not a blank page
    assert errors == []
    assert requests == []
    # drawn: every model's two charts, the distribution and the errors (uPlot canvases),
    # and nothing runs off the right edge of a 1280-px window
    assert drawn["canvases"] == 2 * 2 + 2
    assert drawn["width"] <= 1280


def test_summary_histograms_equal_the_seconds_merged(run_dir: Path):
    """summary-histograms.csv (what the report's percentile chart reads: a few rows, not
    every second's) holds, for each model, exactly the merge of its per-second histograms,
    and the percentiles summary.csv printed."""
    from harness.hdr import counts_of, summarize
    from harness.reports.results import read_histograms
    from harness.stats import merge
    whole = read_histograms(run_dir / "summary-histograms.csv", by="model")
    summary = pd.read_csv(run_dir / "summary.csv")
    assert set(whole) == set(summary["model"])
    for model, hist in whole.items():
        seconds = merge(read_histograms(run_dir / "histograms" / f"{model}.csv").values())
        assert (counts_of(hist) == counts_of(seconds)).all()
        agg = summary[(summary["model"] == model) & (summary["name"] == "Aggregated")].iloc[0]
        assert summarize(hist, (99.0,))["99.0"] / 1000 == agg["p99_ms"]


def test_report_leads_with_the_thresholds_and_writes_numbers_one_way(tmp_path: Path):
    """A run that exits 99: report.html says so first, each threshold with its measured
    value and limit; no Python literal (None, True, False) in the page's tables; error
    rates in percent; counts with separators."""
    path = tmp_path / "gate.toml"
    path.write_text('[run]\nrequests = 1500\n[load]\nconcurrency = 4\n'
                    '[[requests]]\nname = "home"\npath = "/"\n[[models]]\nmodel = "thread"\n'
                    '[thresholds]\np50_ms = "< 0.001"\nerror_rate = "< 0.5"\n')
    proc = run_harness("run", str(path), "--out", str(tmp_path), "--quiet")
    assert proc.returncode == 99, proc.stderr
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    page = (run_dir / "report.html").read_text()
    body = page.split("<body>")[1].split("<script")[0]
    first = body.index('id="thresholds"')
    assert first < body.index("<h2>Summary</h2>")
    assert "Thresholds: 1 of 2 crossed (the run exited 99)" in body
    table = body[first:body.index("<h2>Summary</h2>")]
    assert "p50_ms &lt; 0.001" in table and "CROSSED" in table and "held" in table
    assert re.search(r"<td>&lt; 0.001</td>", table)        # the limit, beside ...
    assert re.search(r"<td>\d[\d,.]*</td>", table)          # ... the measured value
    cells = re.findall(r"<td>(.*?)</td>", body)
    assert not {"None", "True", "False", "nan"} & set(cells), cells
    assert "1,500" in cells                                 # requests with a separator
    assert "0.00%" in cells                                 # the error rate in percent
