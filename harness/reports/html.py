"""results/<run-id>/ -> report.html: one self-contained page. Its charts are the live
dashboard's own chart code (assets/charts.js on the vendored uPlot), inlined with their data,
so the report looks like the dashboard and its charts zoom; nothing is fetched from a URL.

It leads with what a person reads first (per model: requests, failures, req/s, p50, p95,
p99, max; the verdict); every column and request name is one click away. One latency chart
per model: fifteen lines in one box read as none.

Reads only the result files, so `harness report` rebuilds a report for any old run.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness import assets
from harness.capacity.judge import STEP_COLUMNS
from harness.errors import HarnessError, ReportError
from harness.reports.curves import curve_data, slo_limits
from harness.reports.results import (
    AGGREGATED,
    SUMMARY_HISTOGRAMS,
    read_csv,
    read_histograms,
    saturation_text,
)
from harness.stats import merge

LEAD_COLUMNS = ["model", "requests", "failures", "rps", "p50_ms", "p95_ms", "p99_ms",
                "max_ms"]
# the percentile chart's points: 1/(1-p) on a log axis spreads out the tail
PCTS = (0.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999)
TICKS = [[1, "0%"], [2, "50%"], [10, "90%"], [100, "99%"], [1000, "99.9%"],
         [10000, "99.99%"], [100000, "99.999%"]]


def _none(v: Any) -> Any:
    """JSON for a chart: a missing number is null (a gap), never NaN."""
    if isinstance(v, float | np.floating) and np.isnan(v):
        return None
    return v.item() if isinstance(v, np.generic) else v


def _over_time(ts: pd.DataFrame) -> dict[str, list[list[Any]]]:
    """Per model, the dashboard's points: [second, rps, failures/s, p50, p95, p99]."""
    agg = ts[ts["name"] == AGGREGATED]
    out = {}
    for model, group in agg.groupby("model", sort=False):
        span = (group["requests"] / group["rps"]).where(group["rps"] > 0, 1.0)
        fails = group["failures"] / span
        out[str(model)] = [[_none(v) for v in row] for row in zip(
            group["second"], group["rps"].round(3), fails.round(3), group["p50_ms"],
            group["p95_ms"], group["p99_ms"], strict=True)]
    return out


def _percentiles(run_dir: Path, models: list[str]) -> dict[str, list[float]]:
    """Per model, the latency (ms) at each of PCTS, from the exact whole-run histogram."""
    whole = run_dir / SUMMARY_HISTOGRAMS
    totals = read_histograms(whole, by="model") if whole.exists() else {}
    out = {}
    for model in models:
        path = run_dir / "histograms" / f"{model}.csv"
        if model in totals:
            hist = totals[model]
        elif path.exists():   # a run written before summary-histograms.csv
            hist = merge(read_histograms(path).values())
        else:
            continue
        if hist.get_total_count():
            out[model] = [hist.get_value_at_percentile(p) / 1000 for p in PCTS]
    return out


def _errors(errors: pd.DataFrame) -> dict[str, Any]:
    """Errors per second, one series per model and kind, on one shared x."""
    if errors.empty:
        return {}
    per = errors.groupby(["model", "kind", "second"])["count"].sum()
    seconds = sorted(set(errors["second"]))
    series = {f"{m}: {k}": [int(per.get((m, k, s), 0)) for s in seconds]
              for m, k in sorted({(m, k) for m, k, _ in per.index})}
    return {"x": [int(s) for s in seconds], "series": series}


_COUNTS = ("requests", "failures", "sent", "late", "skipped", "bytes_in", "count",
           "tls_handshakes", "status", "second")


def _table(frame: pd.DataFrame) -> str:
    """One way to write a number in every table: counts with separators, rates and times
    with two decimals and separators, error rates as percentages."""
    formatters = {c: (lambda v: f"{int(v):,}") for c in frame.columns if c in _COUNTS}
    if "error_rate" in frame.columns:
        formatters["error_rate"] = lambda v: f"{100 * float(v):.2f}%"
    for c in frame.columns:   # yes/no, never a Python literal
        if frame[c].dtype == bool or c == "valid":
            formatters[c] = lambda v: "yes" if v is True or str(v) == "True" else "no"
    return frame.to_html(index=False, float_format=lambda v: f"{v:,.2f}", border=0,
                         classes="grid", na_rep="", formatters=formatters)


def _plain(value: Any) -> str:
    """A metadata value as a person reads it: no Python literals."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _scenario(run_dir: Path, meta: dict[str, Any]) -> Any:
    """The run's scenario as parsed again from meta.json, or None (an older version's)."""
    from harness.scenario import parse_scenario
    raw = (meta.get("scenario") or {}).get("raw") or {}
    try:
        return parse_scenario(raw, meta["scenario"].get("source") or str(run_dir))
    except HarnessError:
        return None


def _capacity(run_dir: Path, meta: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """A capacity run leads with its answer: the latency-throughput curve (the dashboard's
    chart code) and one row per model; the steps are in capacity.csv below it."""
    path = run_dir / "capacity.csv"
    if not path.exists() or not meta.get("capacity"):
        return [], {}
    try:
        steps = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: not a capacity.csv ({exc})") from None
    missing = [c for c in STEP_COLUMNS if c not in steps.columns]
    if missing:
        raise ReportError(f"{path}: not a capacity.csv (missing {', '.join(missing)})")
    scenario = _scenario(run_dir, meta)
    slo = slo_limits(scenario.capacity.slo) if scenario and scenario.capacity else {}
    curve = curve_data(steps.to_dict("records"), meta["capacity"], slo)
    lines = [html.escape("capacity: " + str(a.get("line") or label))
             for label, a in meta["capacity"].items()]
    parts = ['<h2 id="capacity">How much it can take</h2>',
             '<div id="capacity-chart" class="wide"></div>', '<div id="capacity-table"></div>',
             "<ul>" + "".join(f"<li>{line}</li>" for line in lines) + "</ul>",
             "<details><summary>Every step (capacity.csv)</summary>", _table(steps),
             "</details>"]
    return parts, curve


def _thresholds(run_dir: Path, meta: dict[str, Any], summary: pd.DataFrame) -> list[str]:
    """The gates first: every threshold with each model's measured value and the limit,
    crossed ones marked (what made the run exit 99)."""
    raw = (meta.get("scenario") or {}).get("raw") or {}
    if not raw.get("thresholds"):
        return []
    from harness.reports.thresholds import judge
    scenario = _scenario(run_dir, meta)
    if scenario is None:   # a run of an older version: its crossed lines are all we have
        crossed = meta.get("thresholds_crossed") or []
        return ([f'<h2 class="warn">Thresholds crossed: {len(crossed)}</h2>', "<ul>"]
                + [f"<li>{html.escape(str(c))}</li>" for c in crossed] + ["</ul>"])
    judged = judge(scenario, summary)
    bad = [j for j in judged if j.crossed]
    head = (f'<h2 class="warn" id="thresholds">Thresholds: {len(bad)} of {len(judged)} '
            "crossed (the run exited 99)</h2>" if bad else
            f'<h2 id="thresholds">Thresholds: all {len(judged)} held</h2>')
    frame = pd.DataFrame([{"model": j.model, "threshold": str(j.threshold),
                           "measured": "n/a" if j.actual != j.actual else f"{j.actual:,.4g}",
                           "limit": j.limit,
                           "result": "no such row" if j.row_missing else
                           "CROSSED" if j.crossed else "held"} for j in judged])
    return [head, _table(frame)]


def _script_json(data: Any) -> str:
    return json.dumps(data).replace("</", "<\\/")


CHARTS = """
(function () {
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var over = document.getElementById("over-time");
  Object.keys(data.over_time).forEach(function (model) {
    var row = document.createElement("div");
    row.className = "model";
    row.dataset.model = model;
    var h = document.createElement("h3");
    h.textContent = model;
    var a = document.createElement("div"), b = document.createElement("div");
    a.className = b.className = "chart";
    row.append(h, a, b);
    over.appendChild(row);
    LH.throughput(a, model + ": requests/s", data.over_time[model]);
    LH.latency(b, model + ": latency (ms)", data.over_time[model]);
  });
  if (data.capacity.models) {
    LH.capacity(document.getElementById("capacity-chart"), data.capacity);
    document.getElementById("capacity-table").appendChild(LH.capacityTable(data.capacity));
  }
  var models = Object.keys(data.percentiles);
  if (models.length) {
    LH.lineChart(document.getElementById("distribution"), {
      title: "latency by percentile (HDR, exact merge)", x: data.pct_x, logX: true,
      xLabel: "percentile", yLabel: "ms", xTicks: data.ticks, height: 300,
      series: models.map(function (m) { return {label: m, values: data.percentiles[m]}; })});
  }
  var e = data.errors;
  if (e.x) {
    LH.lineChart(document.getElementById("errors-chart"), {
      title: "errors by kind per second", x: e.x, yLabel: "count",
      series: Object.keys(e.series).map(function (k) { return {label: k, values: e.series[k]}; })});
  }
})();
"""


def build_report(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    try:
        meta = json.loads((run_dir / "meta.json").read_text())
        summary = read_csv(run_dir / "summary.csv", "summary")
        ts = read_csv(run_dir / "timeseries.csv", "timeseries")
        errors = read_csv(run_dir / "errors.csv", "errors")
    except (OSError, ValueError) as exc:
        raise ReportError(f"{run_dir}: not a run directory ({exc})") from None
    models = list(dict.fromkeys(summary["model"]))
    data = {"over_time": _over_time(ts), "percentiles": _percentiles(run_dir, models),
            "pct_x": [1 / (1 - p / 100) for p in PCTS], "ticks": TICKS,
            "errors": _errors(errors)}
    parts = [f"<h1>{html.escape(meta['scenario']['name'])}</h1>",
             f"<p>run <code>{html.escape(meta['run_id'])}</code> against "
             f"<code>{html.escape(str(meta['target_url']))}</code></p>"]
    if meta.get("partial"):
        lost = [w["name"] for w in meta.get("workers", []) if w.get("lost")]
        parts.append('<p class="warn">Partial run'
                     + (f": lost workers {html.escape(', '.join(lost))}" if lost else "")
                     + (" (interrupted)" if meta.get("interrupted") else "") + "</p>")
    capacity_parts, data["capacity"] = _capacity(run_dir, meta)
    parts += capacity_parts
    parts += _thresholds(run_dir, meta, summary)
    for label, m in meta.get("models", {}).items():
        if m.get("client_saturated"):
            parts.append('<p class="warn">' + html.escape(saturation_text(
                label, int(m.get("client_saturated_s") or 0),
                int(m.get("client_sampled_s") or 0),
                m.get("client_saturated_by") or {})) + "</p>")
    lead = summary[summary["name"] == AGGREGATED][LEAD_COLUMNS]
    parts += ["<h2>Summary</h2>", _table(lead),
              "<details><summary>Every column, every request name</summary>",
              _table(summary), "</details>"]
    verdict_path = run_dir / "verdict.csv"
    if verdict_path.exists():
        parts += ["<h2>Verdict</h2>"]
        if meta.get("verdict"):
            parts.append(f"<p>{html.escape(meta['verdict'])}</p>")
        parts.append(_table(pd.read_csv(verdict_path)))
    if not ts.empty:
        parts += ["<h2>Over time</h2>",
                  "<p>Drag across a chart to zoom in, double-click to zoom out.</p>",
                  '<div id="over-time"></div>']
    parts += ["<h2>Latency distribution</h2>", '<div id="distribution" class="wide"></div>',
              "<h2>Errors</h2>"]
    if errors.empty:
        parts.append("<p>No errors.</p>")
    else:
        kinds = errors.groupby(["model", "kind"], as_index=False)["count"].sum()
        parts += ['<div id="errors-chart" class="wide"></div>', _table(kinds)]
    info = {
        "scenario": meta["scenario"].get("source"),
        "versions": ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items()),
        "host": meta.get("host", {}).get("name"),
        "workers": ", ".join(w["name"] + (" (lost)" if w.get("lost") else "")
                             for w in meta.get("workers", [])),
        "partial": meta.get("partial"),
        "requests sent (warm-up included)": meta.get("requests_sent"),
        "mockserver counted": (meta.get("mockserver_stats") or {}).get("requests_total"),
        "dropped messages": meta.get("dropped_messages"),
    }
    parts += ["<h2>Run</h2>", "<table class='grid'>" + "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(_plain(v))}</td></tr>"
        for k, v in info.items()) + "</table>"]
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(meta['scenario']['name'])}
</title><link rel="icon" href="data:,">
<style>{assets.read("uPlot.min.css")}</style>
<style>{assets.read("dashboard.css")}</style>
</head><body>
{"".join(parts)}
<script type="application/json" id="report-data">{_script_json(data)}</script>
<script>{assets.read("uPlot.iife.min.js")}</script>
<script>{assets.read("charts.js")}</script>
<script>{CHARTS}</script>
</body></html>
"""
    out = run_dir / "report.html"
    out.write_text(page, encoding="utf-8")
    return out
