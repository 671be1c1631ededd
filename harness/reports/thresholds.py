"""Thresholds from [thresholds], checked on every model's results (k6 style: exit 99).

One evaluation, read by everything that shows a threshold: the run's `threshold crossed:`
lines, junit.xml's cases and report.html's table (measured value beside the limit)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from harness.reports.intervals import AGGREGATED
from harness.scenario import Scenario


@dataclass(frozen=True)
class Judged:
    """One threshold on one model's row: `actual` is NaN when there was nothing to measure
    (then it counts as crossed), `row_missing` when the model has no such row."""

    model: str
    threshold: object        # scenario.spec.Threshold
    actual: float
    row_missing: bool = False

    @property
    def crossed(self) -> bool:
        return not self.row_missing and (math.isnan(self.actual)
                                         or not self.threshold.holds(self.actual))  # type: ignore[attr-defined]

    @property
    def limit(self) -> str:
        th = self.threshold
        return f"{th.op} {th.value:g}"  # type: ignore[attr-defined]

    def line(self) -> str:
        return f"{self.model}: {self.threshold} (was {self.actual:.4g})"


def judge(scenario: Scenario, summary: pd.DataFrame) -> list[Judged]:
    """Every threshold against every model, in the scenario's order."""
    out = []
    for model in dict.fromkeys(summary["model"]):
        rows = summary[summary["model"] == model]
        for th in scenario.thresholds:
            row = rows[rows["name"] == (th.request or AGGREGATED)]
            if row.empty:
                out.append(Judged(str(model), th, math.nan, row_missing=True))
            else:
                out.append(Judged(str(model), th, float(row.iloc[0][th.metric])))
    return out


def check(scenario: Scenario, summary: pd.DataFrame) -> list[str]:
    """Every crossed threshold as a line: `asyncio-aiohttp: p99_ms < 250 (was 310.2)`."""
    return [j.line() for j in judge(scenario, summary) if j.crossed]
