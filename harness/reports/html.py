"""results/<run-id>/ -> report.html: one self-contained page (plots inline as PNG, no URL).

Reads only the result files, so `harness report` rebuilds a report for any old run.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to PNG bytes
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from harness.errors import ReportError  # noqa: E402
from harness.reports.results import (  # noqa: E402
    AGGREGATED,
    SUMMARY_HISTOGRAMS,
    read_csv,
    read_histograms,
)
from harness.stats import merge  # noqa: E402


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return ('<img alt="plot" src="data:image/png;base64,'
            + base64.b64encode(buf.getvalue()).decode("ascii") + '">')


def _over_time(ts: pd.DataFrame) -> str:
    agg = ts[ts["name"] == AGGREGATED]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 3.6))
    for model, group in agg.groupby("model"):
        ax1.plot(group["second"], group["rps"], label=model)
        ax2.plot(group["second"], group["p99_ms"], label=f"{model} p99")
        ax2.plot(group["second"], group["p95_ms"], linestyle="--", label=f"{model} p95")
        ax2.plot(group["second"], group["p50_ms"], linestyle=":", label=f"{model} p50")
    ax1.set(title="requests/s", xlabel="second")
    ax2.set(title="latency percentiles (ms)", xlabel="second", yscale="log")
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=6, ncol=2)
    return _png(fig)


def _percentile_plot(run_dir: Path, models: list[str]) -> str:
    """The HDR percentile distribution: latency against 1/(1-p) on a log axis."""
    fig, ax = plt.subplots(figsize=(12, 4))
    whole = run_dir / SUMMARY_HISTOGRAMS
    totals = read_histograms(whole, by="model") if whole.exists() else {}
    for model in models:
        path = run_dir / "histograms" / f"{model}.csv"
        if model in totals:
            hist = totals[model]
        elif path.exists():   # a run written before summary-histograms.csv
            hist = merge(read_histograms(path).values())
        else:
            continue
        if hist.get_total_count() == 0:
            continue
        pcts = np.array([0, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999])
        values = [hist.get_value_at_percentile(p) / 1000 for p in pcts]
        ax.plot(1 / (1 - pcts / 100), values, marker="o", label=model)
    ax.set_xscale("log")
    ticks = [1, 2, 10, 100, 1000, 10000, 100000]
    ax.set_xticks(ticks, ["0%", "50%", "90%", "99%", "99.9%", "99.99%", "99.999%"])
    ax.set(title="latency by percentile (HDR, exact merge)", ylabel="ms")
    ax.legend(fontsize=7)
    return _png(fig)


def _errors_plot(errors: pd.DataFrame) -> str:
    if errors.empty:
        return "<p>No errors.</p>"
    fig, ax = plt.subplots(figsize=(12, 3))
    for (model, kind), group in errors.groupby(["model", "kind"]):
        per_second = group.groupby("second")["count"].sum()
        ax.plot(per_second.index, per_second.values, marker=".", label=f"{model}: {kind}")
    ax.set(title="errors by kind per second", xlabel="second")
    ax.legend(fontsize=7)
    return _png(fig)


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:,.2f}", border=0,
                         classes="grid", na_rep="")


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
    parts = [f"<h1>{html.escape(meta['scenario']['name'])}</h1>",
             f"<p>run <code>{html.escape(meta['run_id'])}</code> against "
             f"<code>{html.escape(str(meta['target_url']))}</code></p>"]
    if meta.get("partial"):
        lost = [w["name"] for w in meta.get("workers", []) if w.get("lost")]
        parts.append('<p class="warn">Partial run'
                     + (f": lost workers {html.escape(', '.join(lost))}" if lost else "")
                     + (" (interrupted)" if meta.get("interrupted") else "") + "</p>")
    for label, m in meta.get("models", {}).items():
        if m.get("client_saturated"):
            parts.append(f'<p class="warn">{html.escape(label)} saturated its client (load '
                         f'process CPU &ge; 90% in {m.get("client_saturated_s")} of '
                         f'{m.get("client_sampled_s")} measured seconds): its latencies '
                         "include its own queueing and its requests/s is its own limit</p>")
    parts += ["<h2>Summary</h2>", _table(summary)]
    verdict_path = run_dir / "verdict.csv"
    if verdict_path.exists():
        parts += ["<h2>Verdict</h2>", _table(pd.read_csv(verdict_path))]
        if meta.get("verdict"):
            parts.append(f"<p>{html.escape(meta['verdict'])}</p>")
    if not ts.empty:
        parts += ["<h2>Over time</h2>", _over_time(ts)]
    parts += ["<h2>Latency distribution</h2>", _percentile_plot(run_dir, models),
              "<h2>Errors</h2>", _errors_plot(errors)]
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
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in info.items()) + "</table>"]
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(meta['scenario']['name'])}
</title><style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table.grid {{ border-collapse: collapse; font-size: 13px; margin-bottom: 1em; }}
.grid th, .grid td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
.warn {{ color: #a00; font-weight: bold; }}
img {{ max-width: 100%; }}
</style></head><body>
{"".join(parts)}
</body></html>
"""
    out = run_dir / "report.html"
    out.write_text(page, encoding="utf-8")
    return out
