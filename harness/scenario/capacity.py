"""[capacity]: the capacity search's keys, every one checked before anything is sent."""

from __future__ import annotations

from typing import Any

from harness.core.registry import MODELS
from harness.scenario.ctx import Ctx, show
from harness.scenario.spec import MAX_USERS, OVER, SLO_METRICS, CapacitySpec, ModelSpec
from harness.scenario.thresholds import parse_threshold

KEYS = ("slo", "start_rate", "max_rate", "step", "step_warmup", "precision", "max_steps",
        "over", "max_users")


def parse_capacity(ctx: Ctx, raw: Any, models: tuple[ModelSpec, ...],
                   staged: bool) -> CapacitySpec:
    table = ctx.table(raw, "[capacity]")
    ctx.keys(table, KEYS, "[capacity]")
    if staged:
        raise ctx.fail("[capacity]", "expected no [load].stages: the search chooses each "
                                     "step's load itself")
    slo_raw = ctx.table(table["slo"], "[capacity].slo") if "slo" in table else None
    if not slo_raw:
        raise ctx.fail("[capacity].slo", 'expected a table like { p99_ms = "< 100", '
                                         'error_rate = "< 0.01" }')
    slo = []
    for metric, cond in slo_raw.items():
        where = f"[capacity].slo.{metric}"
        if metric not in SLO_METRICS:
            raise ctx.fail(where, f"expected one of {', '.join(SLO_METRICS)}")
        slo.append(parse_threshold(ctx, where, metric, cond, None))
    over = table.get("over", "rate")
    if over not in OVER:
        raise ctx.fail("[capacity].over", f'expected "rate" or "concurrency", got {show(over)}')
    if over == "rate":
        for i, m in enumerate(models):
            if not MODELS[m.model].open_model:
                raise ctx.fail(f"[[models]][{i}].model",
                               f'"{m.model}" has no open (rate) model to search over rate: '
                               'use [capacity].over = "concurrency", which steps users')
    start = ctx.number(table.get("start_rate", 200), "[capacity].start_rate")
    maximum = ctx.number(table.get("max_rate", 200_000), "[capacity].max_rate")
    if maximum < start:
        raise ctx.fail("[capacity].max_rate", f"expected at least start_rate ({start:g}), "
                                              f"got {maximum:g}")
    precision = ctx.number(table.get("precision", 0.05), "[capacity].precision")
    if not 0 < precision <= 0.5:
        raise ctx.fail("[capacity].precision", f"expected a number in (0, 0.5], got "
                                               f"{precision:g}")
    return CapacitySpec(
        slo=tuple(slo), start_rate=start, max_rate=maximum,
        step_s=ctx.duration(table.get("step", "5s"), "[capacity].step", maximum=3600),
        step_warmup_s=ctx.duration(table.get("step_warmup", "1s"), "[capacity].step_warmup",
                                   allow_zero=True, maximum=600),
        precision=precision,
        max_steps=ctx.integer(table.get("max_steps", 20), "[capacity].max_steps", 1, 100),
        over=over,
        max_users=ctx.integer(table.get("max_users", 1024), "[capacity].max_users", 1,
                              MAX_USERS))
