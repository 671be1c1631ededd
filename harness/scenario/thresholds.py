"""[thresholds] (and the SLO of [capacity]): `metric = "< 250"`, for the Aggregated row or
per request name."""

from __future__ import annotations

from typing import Any

from harness.scenario.ctx import Ctx, show
from harness.scenario.spec import METRICS, THRESHOLD, Threshold


def parse_thresholds(ctx: Ctx, raw: Any, names: set[str]) -> tuple[Threshold, ...]:
    out = []
    table = ctx.table(raw, "[thresholds]")
    for key, value in table.items():
        if isinstance(value, dict):  # per request name
            if key not in names:
                raise ctx.fail(f"[thresholds.{key}]", f"expected a request name "
                                                      f"({', '.join(sorted(names))})")
            for metric, cond in value.items():
                out.append(parse_threshold(ctx, f"[thresholds.{key}].{metric}", metric, cond, key))
        else:
            out.append(parse_threshold(ctx, f"[thresholds].{key}", key, value, None))
    return tuple(out)


def parse_threshold(ctx: Ctx, where: str, metric: str, cond: Any, request: str | None) -> Threshold:
    if metric not in METRICS:
        raise ctx.fail(where, f"unknown metric (expected one of {', '.join(METRICS)})")
    m = THRESHOLD.match(cond) if isinstance(cond, str) else None
    if m is None:
        raise ctx.fail(where, f'expected a condition like "< 250", got {show(cond)}')
    return Threshold(metric, m.group(1), float(m.group(2)), request)
