"""The latency-throughput curve of a capacity run: the data both report.html and the live
dashboard draw with the one chart function (assets/charts.js `LH.capacity`).

Per model, each step as a point (achieved req/s; p50 and p99 ms; passed), sorted by what
was achieved, plus the search's answer: the capacity and the knee marked on the curve, the
bracket and what limited it. The SLO's latency limits are drawn as lines. Built from rows
(capacity.csv's, or the live search's steps as dicts), so an old run's report and a
running search look the same.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

# the answer's fields a chart or its table shows (meta.json's capacity entries have more)
ANSWER_FIELDS = ("capacity_rps", "low", "high", "knee", "limited_by", "users", "over")


def _number(v: Any) -> float | None:
    """JSON for a chart: a missing number is null, never NaN."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else round(f, 3)


def curve_data(rows: Iterable[dict[str, Any]], answers: dict[str, dict[str, Any]],
               slo_ms: dict[str, float]) -> dict[str, Any]:
    """{slo_ms: {metric: limit}, models: [{label, points: [[achieved, p50, p99,
    passed, offered, reason]], answer fields}]} -- models in the order their steps came."""
    models: dict[str, dict[str, Any]] = {}
    for row in rows:
        label = str(row["model"])
        mine = models.setdefault(label, {"label": label, "points": []})
        mine["points"].append([_number(row.get("achieved_rps")), _number(row.get("p50_ms")),
                               _number(row.get("p99_ms")),
                               str(row.get("passed")) in ("True", "true", "1"),
                               _number(row.get("offered")), str(row.get("reason") or "")])
    for label, answer in answers.items():
        mine = models.setdefault(label, {"label": label, "points": []})
        for key in ANSWER_FIELDS:
            value = answer.get(key)
            mine[key] = value if isinstance(value, str) else _number(value)
    for mine in models.values():
        mine["points"].sort(key=lambda p: (p[0] is None, p[0] or 0.0))
    return {"slo_ms": {k: float(v) for k, v in slo_ms.items()},
            "models": list(models.values())}


def slo_limits(slo: Iterable[Any]) -> dict[str, float]:
    """The latency limits of an SLO (parsed thresholds): metric -> ms, each a line on the
    chart (its p50 and p99 curves are read against them)."""
    return {th.metric: float(th.value) for th in slo if th.metric.endswith("_ms")}
