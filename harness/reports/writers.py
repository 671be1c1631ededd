"""What a run leaves, as one list of writers (vegeta's Reporter): the run, `harness report`
and recovery all go through it, so a new output format is one writer here. Each writer
names its files (recovery removes them before it writes them again) and writes from the
judged run; the per-second files come from the interval sink as seconds close."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.core.outcome import RunOutcome
from harness.scenario import Scenario


@dataclass
class Judged:
    """A finished run as the writers read it."""

    run_dir: Path
    scenario: Scenario
    outcome: RunOutcome
    summary: pd.DataFrame
    verdict: Any                       # reports.verdict.Verdict or None
    said: dict[str, str]               # model -> its saturated-client sentence
    meta: dict[str, Any] = field(default_factory=dict)   # url, embedded, mock stats, extra


@dataclass(frozen=True)
class Writer:
    files: tuple[str, ...]
    write: Callable[[Judged], None]


def _results(j: Judged) -> None:
    from harness.reports import results
    results.write_run(j.run_dir, j.scenario, j.outcome, j.summary, **j.meta)


def _verdict(j: Judged) -> None:
    if j.verdict is not None:
        j.verdict.table.to_csv(j.run_dir / "verdict.csv", index=False)


def _capacity(j: Judged) -> None:
    """capacity.csv: one row per step of every model's search ([capacity] runs)."""
    if not j.outcome.capacity:
        return
    rows = [{**step.row(), "little_flagged": step.little_flagged}
            for found in j.outcome.capacity.values() for step in found.steps]
    pd.DataFrame(rows).to_csv(j.run_dir / "capacity.csv", index=False)


CLIENT_COLUMNS = ["model", "worker", "process", "second", "cpu", "loop_lag_ms", "late_ratio",
                  "host_idle", "signal"]


def _client(j: Judged) -> None:
    """client.csv: each load process's signals, a row per measured second (is the
    generator the limit? clients/sampler.py)."""
    rows = [[r.label, worker, *row] for r in j.outcome.models
            for worker, totals in sorted(r.totals.items())
            for row in totals.get("seconds", []) if len(row) == len(CLIENT_COLUMNS) - 2]
    pd.DataFrame(rows, columns=CLIENT_COLUMNS).to_csv(j.run_dir / "client.csv", index=False)


def _junit(j: Judged) -> None:
    from harness.reports.junit import write_run_junit
    write_run_junit(j.run_dir, j.scenario, j.summary, j.said)


def _html(j: Judged) -> None:   # last: it reads what the others wrote
    from harness.reports.html import build_report
    build_report(j.run_dir)


# per second, appended by the interval sink (reports/intervals.py) as each closes
PER_SECOND = ("timeseries.csv", "errors.csv", "statuses.csv", "histograms/*.csv")

WRITERS: tuple[Writer, ...] = (
    Writer(("summary.csv", "summary-histograms.csv", "meta.json"), _results),
    Writer(("verdict.csv",), _verdict),
    Writer(("capacity.csv",), _capacity),
    Writer(("client.csv",), _client),
    Writer(("junit.xml",), _junit),
    Writer(("report.html",), _html),
)


def write_all(judged: Judged) -> None:
    for writer in WRITERS:
        writer.write(judged)


def remove_written(run_dir: Path) -> None:
    """Every file the writers and the sink make, before a rebuild writes them anew
    (meta.json stays: it holds the scenario the rebuild reads)."""
    for writer in WRITERS:
        for name in writer.files:
            if name != "meta.json":
                (run_dir / name).unlink(missing_ok=True)
    for pattern in PER_SECOND:
        for path in run_dir.glob(pattern):
            path.unlink()
