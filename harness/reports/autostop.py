"""Auto-stop (Yandex.Tank's autostop, k6's abortOnFail): `[thresholds] abort_after = "5s"`
stops a model once any threshold has been crossed in every second for that long.

A listener of the interval sink: each second, as it closes with every worker's cells
merged exactly, is judged against the thresholds (the Aggregated row of that second, or a
request's own); a run of crossed seconds as long as abort_after sets the model's
`stop_requested`, which the coordinator turns into ABORT. The results are written as for
any run, and the run exits 99.
"""

from __future__ import annotations

import math

from harness.core.outcome import ModelResult
from harness.reports.intervals import ms_row
from harness.scenario import Scenario
from harness.stats import IntervalStats, on_the_wire

PCTS = (50.0, 90.0, 95.0, 99.0, 99.9)


def second_metrics(cell: IntervalStats, span: float) -> dict[str, float]:
    """The threshold metrics of one second's cell (a second's rps is its requests)."""
    n = cell.hist.get_total_count()
    failures = sum(cell.errors.values())
    return {"requests": n, "failures": failures, "rps": n / span if span else math.nan,
            "error_rate": failures / n if n else 0.0, **ms_row(cell, PCTS)}


class AutoStop:
    def __init__(self, scenario: Scenario) -> None:
        assert scenario.abort_after_s is not None
        self.thresholds = scenario.thresholds
        self.needed = max(1, math.ceil(scenario.abort_after_s - 1e-9))
        self.crossed: dict[str, int] = {}    # model -> crossed seconds in a row

    def interval(self, result: ModelResult, second: int, cells: dict[str, IntervalStats],
                 span: float) -> None:
        if result.stop_requested or span < 0.5:   # a partial last second is not judged
            return
        everything = on_the_wire(cells)
        crossed = []
        for th in self.thresholds:
            cell = cells.get(th.request) if th.request else everything
            if cell is None or not cell.hist.get_total_count() and th.metric.endswith("_ms"):
                continue   # nothing measured for it this second: not a crossing
            value = second_metrics(cell, span)[th.metric]
            if not math.isnan(value) and not th.holds(value):
                crossed.append(f"{th} (was {value:.4g})")
        run = self.crossed[result.label] = self.crossed.get(result.label, 0) + 1 \
            if crossed else 0
        if run >= self.needed:
            result.stop_requested = (f"{crossed[0]} in each of {run} seconds "
                                     f"(abort_after {self.needed} s)")
