"""Intervals written as they close: a timeseries row per name (and Aggregated), the errors
and statuses of that second, and its exact histograms -- appended to the run directory's
files while the run goes on, so a run of any length holds O(names) in memory and a kill
leaves every closed second on disk.

An interval closes once every live worker taking part has sent a later one (its own
stragglers, in flight at that moment, land in the next open interval: `late_cells`). The
coordinator calls `advance` about four times a second while a model runs and `finish`
when it ends; `harness report` replays a journal through the same two calls.
"""

from __future__ import annotations

import base64
import csv
import math
from pathlib import Path
from typing import Any

from harness.core.names import AGGREGATED
from harness.core.outcome import ModelResult
from harness.hdr import summarize
from harness.reports.seconds import replace_seconds
from harness.scenario import Scenario
from harness.stats import (
    IntervalStats,
    collect_cycles,
    error_detail,
    error_kind,
    on_the_wire,
)

TLS_COLUMNS = ["tls_handshakes", "tls_p50_ms", "tls_p99_ms", "tls_max_ms"]
TIMESERIES_COLUMNS = ["model", "name", "second", "requests", "failures", "rps", "ok_rps",
                      "p50_ms", "p95_ms", "p99_ms", "max_ms", *TLS_COLUMNS]
ERRORS_COLUMNS = ["model", "name", "second", "kind", "status", "count", "detail"]
STATUSES_COLUMNS = ["model", "name", "second", "status", "count"]
HISTOGRAM_COLUMNS = ["name", "second", "hist"]
ROW_SETS = ("timeseries", "errors", "statuses", "histograms")   # _appenders' order


def ms_row(cell: IntervalStats, pcts: tuple[float, ...] = (50.0, 95.0, 99.0)
           ) -> dict[str, float]:
    """Latencies of a cell in ms (nan when it holds no request), from the HDR counts."""
    got = summarize(cell.hist, pcts)
    row = {f"p{p:g}_ms".replace(".", ""): got[str(p)] / 1000.0 for p in pcts}
    row.update(max_ms=got["max"] / 1000.0, mean_ms=got["mean"] / 1000.0,
               min_ms=got["min"] / 1000.0)
    return row


def tls_row(cell: IntervalStats) -> dict[str, float]:
    """The TLS handshakes these requests paid for: how many, and their durations in ms
    (nan where none was made)."""
    if cell.tls is None or not cell.tls.get_total_count():
        return {"tls_handshakes": 0, "tls_p50_ms": math.nan, "tls_p99_ms": math.nan,
                "tls_max_ms": math.nan}
    got = summarize(cell.tls, (50.0, 99.0))
    return {"tls_handshakes": int(got["total"]), "tls_p50_ms": got["50.0"] / 1000.0,
            "tls_p99_ms": got["99.0"] / 1000.0, "tls_max_ms": got["max"] / 1000.0}


def measured_seconds(result: ModelResult, scenario: Scenario) -> float:
    """Measured time: from the workers' DONE, or -- when no worker said DONE (every one
    lost) -- from the intervals received, so such a run still has true rates."""
    warmup_s, run_s = result.window or (scenario.warmup_s, scenario.run_seconds)
    if result.totals:
        elapsed = max(float(t.get("elapsed_s", 0.0)) for t in result.totals.values())
        measured = max(elapsed - warmup_s, 1e-9)
    else:
        measured = float(max(result.max_interval + 1, 1))
    if run_s:
        measured = min(measured, run_s)
    return measured


class _Appender:
    """One CSV file opened for appending, its header written when it is new."""

    def __init__(self, path: Path, columns: list[str]) -> None:
        self.path, self.columns = path, columns
        self.reopen()

    def reopen(self) -> None:
        """(Re)open for appending; the header only into a new, empty file."""
        new = not self.path.exists() or self.path.stat().st_size == 0
        self.file = open(self.path, "a", newline="")  # noqa: SIM115 - open for the run
        self.writer = csv.DictWriter(self.file, self.columns, extrasaction="ignore")
        if new:
            self.writer.writeheader()

    def rows(self, rows: list[dict[str, Any]]) -> None:
        self.writer.writerows(rows)

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()


class IntervalSink:
    """Where closed intervals go. A write that fails (disk full, read-only) is kept in
    `error` and ends the writing, never the run: the journal still holds every interval,
    and the run ends with one line naming the path."""

    def __init__(self, run_dir: Path, scenario: Scenario) -> None:
        self.run_dir = run_dir
        self.scenario = scenario
        self.error: OSError | None = None
        self.timeseries = _Appender(run_dir / "timeseries.csv", TIMESERIES_COLUMNS)
        self.errors = _Appender(run_dir / "errors.csv", ERRORS_COLUMNS)
        self.statuses = _Appender(run_dir / "statuses.csv", STATUSES_COLUMNS)
        (run_dir / "histograms").mkdir(exist_ok=True)
        self.histograms: dict[str, _Appender] = {}
        # (interval, name, wire) of a model's cells in the given intervals, as the run's
        # journal holds them, for the rewrite of late seconds (run.py streams the journal,
        # flushed first); None: no rewrite
        self.journal_cells: Any = None
        # who else sees each closed interval (the dashboard's board): listener.interval(
        # result, second, cells, span), after the rows are written
        self.listeners: list[Any] = []

    @property
    def planned_last(self) -> int | None:
        """A duration-bounded run's last second: it stays open until the model ends, as
        requests in flight at the end are counted in it."""
        seconds = self.scenario.run_seconds
        return max(math.ceil(seconds - 1e-9) - 1, 0) if seconds else None

    def advance(self, result: ModelResult, every_worker_past: int) -> None:
        """Close every interval that every live worker taking part has moved past -- by
        what they sent, not by the clock: a second whose data is held up by a network cut
        is written when it arrives, as itself -- never the planned last second."""
        upto = every_worker_past
        last = self.planned_last
        if last is not None:
            upto = min(upto, last)
        if upto > result.closed:
            for second, cells in result.take(upto).items():
                self._write(result, second, cells, 1.0)
            self._flush()   # each closed second reaches the disk: tail -f shows it, and a
            collect_cycles()  # kill -9 leaves it written (it sat in an 8 KiB buffer)

    def finish(self, result: ModelResult) -> None:
        """The model ended: close what is left (the last second takes the stragglers)."""
        measured_s = measured_seconds(result, self.scenario)
        run_s = result.window[1] if result.window else self.scenario.run_seconds
        last = max(math.ceil(measured_s - 1e-9) - 1, 0) if run_s else None
        for second, cells in result.take(None, fold_from=last).items():
            self._write(result, second, cells, min(1.0, max(measured_s - second, 1e-3)))
        self._flush()
        if result.late_seconds and self.journal_cells is not None and self.error is None:
            self._rewrite(result, measured_s, last)

    def _rewrite(self, result: ModelResult, measured_s: float, last: int | None) -> None:
        """Late cells in their own seconds: only those seconds' rows of this model are
        rewritten (reports/seconds.py), from every cell of them the journal holds --
        streamed, so neither the journal nor the files are ever held whole."""
        seconds = set(result.late_seconds)
        again = ModelResult(result.label, result.index)
        try:
            for second, name, wire in self.journal_cells(result.index, seconds):
                again.add_wire(second, name, wire)
        except (OSError, ValueError):
            return   # the rows stay as written; late cells are in the totals
        sets = {second: self._row_sets(result.label, second, cells,
                                       min(1.0, max(measured_s - second, 1e-3)))
                for second, cells in again.take(None, fold_from=last).items()}
        try:
            self._each(lambda a: a.file.flush())
            for key, appender in zip(ROW_SETS, self._appenders(result.label), strict=True):
                appender.close()
                replace_seconds(appender.path, appender.columns,
                                None if key == "histograms" else result.label,
                                {second: rows[key] for second, rows in sets.items()})
                appender.reopen()
        except OSError as exc:
            self.error = exc
        result.late_seconds.clear()

    def _appenders(self, label: str) -> list[_Appender]:
        return [self.timeseries, self.errors, self.statuses, self.histograms[label]]

    def _flush(self) -> None:
        if self.error is not None:
            return
        try:
            self._each(lambda a: a.file.flush())
        except OSError as exc:
            self.error = exc

    def _write(self, result: ModelResult, second: int, cells: dict[str, IntervalStats],
               span: float) -> None:
        for listener in self.listeners:
            listener.interval(result, second, cells, span)
        if self.error is not None:
            return
        try:
            self._rows(result, second, cells, span)
        except OSError as exc:
            self.error = exc

    def _rows(self, result: ModelResult, second: int, cells: dict[str, IntervalStats],
              span: float) -> None:
        label = result.label
        if label not in self.histograms:
            self.histograms[label] = _Appender(self.run_dir / "histograms" / f"{label}.csv",
                                               HISTOGRAM_COLUMNS)
        rows = self._row_sets(label, second, cells, span)
        for key, appender in zip(ROW_SETS, self._appenders(label), strict=True):
            appender.rows(rows[key])

    @staticmethod
    def _row_sets(label: str, second: int, cells: dict[str, IntervalStats],
                  span: float) -> dict[str, list[dict[str, Any]]]:
        """One second's rows for each per-second file (ROW_SETS)."""
        agg = on_the_wire(cells)
        series = []
        for name, cell in [*sorted(cells.items()), (AGGREGATED, agg)]:
            n = cell.hist.get_total_count()
            series.append({"model": label, "name": name, "second": second, "requests": n,
                           "failures": sum(cell.errors.values()), "rps": n / span,
                           "ok_rps": cell.ok / span, **ms_row(cell), **tls_row(cell)})
        return {
            "timeseries": series,
            "errors": [{"model": label, "name": name, "second": second, "kind": kind,
                        "status": status, "count": n, "detail": error_detail(key)}
                       for name, cell in sorted(cells.items())
                       for key, n in sorted(cell.errors.items())
                       for kind, status in [error_kind(key)]],
            "statuses": [{"model": label, "name": name, "second": second, "status": status,
                          "count": n} for name, cell in sorted(cells.items())
                         for status, n in sorted(cell.statuses.items())],
            "histograms": [{"name": name, "second": second,
                            "hist": base64.b64encode(cell.hist.encode()).decode("ascii")}
                           for name, cell in sorted(cells.items())],
        }

    def close(self) -> None:
        self._each(_Appender.close)

    def _each(self, do: Any) -> None:
        for appender in (self.timeseries, self.errors, self.statuses,
                         *self.histograms.values()):
            try:
                do(appender)
            except OSError as exc:
                self.error = self.error or exc
