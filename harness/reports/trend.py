"""A baseline's trend page: each metric (Aggregated row, a line per model) over the stored
runs in the order they ran, drawn by the same chart code as report.html, so a drift
across runs is seen before it becomes a gate's false alarm."""

from __future__ import annotations

import html
import json
from pathlib import Path

from harness import assets
from harness.reports.baselines import noise_table, stored_runs
from harness.reports.compare import METRICS, load_source
from harness.reports.intervals import AGGREGATED

_SCRIPT = """
(function () {
  var data = JSON.parse(document.getElementById("trend-data").textContent);
  var box = document.getElementById("trend");
  Object.keys(data.metrics).forEach(function (metric) {
    var el = document.createElement("div");
    el.className = "chart";
    el.dataset.metric = metric;
    box.appendChild(el);
    var m = data.metrics[metric];
    LH.lineChart(el, {title: metric + " over the baseline's runs", x: data.x,
      xLabel: "run", yLabel: metric,
      series: Object.keys(m).map(function (k) { return {label: k, values: m[k]}; })});
  });
})();
"""


def _finite(v: float) -> float | None:
    return None if v != v or v in (float("inf"), float("-inf")) else float(v)


def trend_data(root: Path, name: str) -> dict[str, object]:
    runs = stored_runs(root, name)
    sources = [load_source(str(p)) for p in runs]
    models = list(dict.fromkeys(m for s in sources for (m, n) in s.rows if n == AGGREGATED))
    metrics = {metric: {str(model): [_finite(s.rows[(model, AGGREGATED)].values[metric])
                                     if (model, AGGREGATED) in s.rows else None
                                     for s in sources] for model in models}
               for metric in METRICS}
    return {"x": list(range(1, len(runs) + 1)), "runs": [p.name for p in runs],
            "metrics": metrics}


def write_trend(root: Path, name: str, out: Path) -> Path:
    data = trend_data(root, name)
    rows = "".join(f"<li>{i}: <code>{html.escape(r)}</code></li>"
                   for i, r in enumerate(data["runs"], 1))   # type: ignore[arg-type]
    noise = noise_table(root, name)
    table = noise.to_html(index=False, border=0, classes="grid") if not noise.empty else ""
    blob = json.dumps(data).replace("</", "<\\/")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>baseline {html.escape(name)}</title>
<link rel="icon" href="data:,">
<style>{assets.read("uPlot.min.css")}</style><style>{assets.read("dashboard.css")}</style>
</head><body><h1>baseline {html.escape(name)}</h1><ol>{rows}</ol>
<h2>Trend</h2><div id="trend"></div><h2>Noise between runs</h2>{table}
<script type="application/json" id="trend-data">{blob}
</script>
<script>{assets.read("uPlot.iife.min.js")}</script><script>{assets.read("charts.js")}</script>
<script>{_SCRIPT}</script></body></html>
"""
    out.write_text(page, encoding="utf-8")
    return out
