"""Thresholds from [thresholds], checked on every model's results (k6 style: exit 99)."""

from __future__ import annotations

import math

import pandas as pd

from harness.scenario import Scenario


def check(scenario: Scenario, summary: pd.DataFrame) -> list[str]:
    """Every crossed threshold as a line: `asyncio-aiohttp: p99_ms < 250 (was 310.2)`."""
    crossed = []
    for th in scenario.thresholds:
        name = th.request or "Aggregated"
        rows = summary[summary["name"] == name]
        for row in rows.itertuples():
            actual = float(getattr(row, th.metric))
            if math.isnan(actual) or not th.holds(actual):
                crossed.append(f"{row.model}: {th} (was {actual:.4g})")
    return crossed
