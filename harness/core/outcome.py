"""What a run measured, as the coordinator hands it on: workers, per-model merged cells.

Kept apart from the coordinator so results, reports and progress read these types without
importing the socket loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.stats import IntervalStats, sum_wires


@dataclass
class WorkerInfo:
    identity: bytes
    name: str
    index: int
    host: str
    last_heard: float
    lost_at: float | None = None
    lost_during: str | None = None
    gaps: list[tuple[float, float]] = field(default_factory=list)  # (lost, back), wall

    @property
    def alive(self) -> bool:
        return self.lost_at is None


@dataclass
class Tally:
    """What live progress needs of a cell, kept without decoding its histogram."""

    requests: int = 0
    errors: int = 0
    worst_p99_us: int = 0


@dataclass
class ModelResult:
    """One model's results, merged exactly across workers, folded as intervals close.

    STATS cells arrive encoded and wait in `pending` while their interval is open (a
    worker's in-flight requests may still land in it). When it closes, its cells are
    decoded and merged, handed to the interval sink (a timeseries row, errors, statuses
    and histograms, written out), and folded into `by_name`: memory is O(names), never
    O(seconds). A cell for an interval already closed (a worker back from a partition)
    is counted in `late_cells` and folded into the totals at once; the seconds it belongs
    to are in `late_seconds`, for the interval sink to rewrite from the journal at the
    model's end (folding it into an open second drew a false spike)."""

    label: str
    index: int
    pending: dict[tuple[int, str], list[dict[str, Any]]] = field(default_factory=dict)
    tallies: dict[int, Tally] = field(default_factory=dict)
    totals: dict[int, dict[str, Any]] = field(default_factory=dict)   # DONE, by worker
    sent_seen: dict[int, int] = field(default_factory=dict)   # last STATS `sent`, by worker
    newest: dict[int, int] = field(default_factory=dict)   # newest interval, by worker
    errors: list[str] = field(default_factory=list)
    started_wall: float = 0.0
    ended_wall: float = 0.0
    aborted: bool = False
    undecodable: int = 0
    by_name: dict[str, IntervalStats] = field(default_factory=dict)
    closed: int = 0            # intervals below this are written and folded
    max_interval: int = -1     # the newest interval any worker reported
    late_cells: int = 0
    late_seconds: set[int] = field(default_factory=set)
    folded_requests: int = 0   # requests of tallies dropped (progress keeps a running total)
    tail_requests: int = 0     # requests that ended after the measured end (folded in)
    stop_requested: str = ""   # auto-stop: why the model was stopped early (a threshold)
    # a capacity search's step measures its own window: (warm-up s, measured s)
    window: tuple[float, float] | None = None

    def add_wire(self, interval: int, name: str, wire: dict[str, Any]) -> None:
        if interval < self.closed:   # written already: its own second is rewritten later
            self.late_cells += 1
            self.late_seconds.add(interval)
            cell, bad = sum_wires([wire])   # in the totals now: memory stays O(names)
            self.undecodable += bad
            if not bad:
                self.by_name.setdefault(name, IntervalStats()).add(cell)
            return
        self.max_interval = max(self.max_interval, interval)
        self.pending.setdefault((interval, name), []).append(wire)
        tally = self.tallies.setdefault(interval, Tally())
        tally.requests += wire["n"]
        tally.errors += sum(wire["errors"].values())
        tally.worst_p99_us = max(tally.worst_p99_us, wire.get("p99_us", 0))

    def take(self, upto: int | None = None, fold_from: int | None = None
             ) -> dict[int, dict[str, IntervalStats]]:
        """Close the intervals below `upto` (all when None): their cells decoded and
        merged, by interval and name; intervals from `fold_from` on are counted as
        `fold_from` (requests in flight at the end belong to the last second)."""
        closing: dict[tuple[int, str], list[dict[str, Any]]] = {}
        for key in sorted(key for key in self.pending if upto is None or key[0] < upto):
            interval, name = key
            if fold_from is not None and interval > fold_from:
                self.tail_requests += sum(w["n"] for w in self.pending[key])
                interval = fold_from
            closing.setdefault((interval, name), []).extend(self.pending.pop(key))
        out: dict[int, dict[str, IntervalStats]] = {}
        for (interval, name), wires in closing.items():
            cell, bad = sum_wires(wires)
            self.undecodable += bad
            if bad < len(wires):
                out.setdefault(interval, {})[name] = cell
        if upto is None:
            self.closed = max(self.closed, self.max_interval + 1)
        else:
            self.closed = max(self.closed, upto)
        for second in [second for second in self.tallies if second < self.closed - 2]:
            self.folded_requests += self.tallies.pop(second).requests  # progress: the newest few
        for cells in out.values():
            for name, cell in cells.items():
                self.by_name.setdefault(name, IntervalStats()).add(cell)
        return out

    def sent(self) -> int:
        """Requests every worker put on the wire: DONE's count, else the last STATS's."""
        workers = set(self.totals) | set(self.sent_seen)
        # DONE's count is final: a STATS taken while a connect was still failing counted
        # it as sent (it was taken off `sent` when it failed before reaching HTTP)
        return sum(int(self.totals[w].get("sent", 0)) if w in self.totals
                   else self.sent_seen.get(w, 0) for w in workers)


@dataclass
class RunOutcome:
    models: list[ModelResult]
    workers: list[WorkerInfo]
    dropped_messages: int
    refused_workers: int
    interrupted: bool
    recovered: bool = False    # rebuilt from the journal of a run that never finished
    # [capacity]: each model's search (capacity.drive.Found), by model label
    capacity: dict[str, Any] = field(default_factory=dict)

    @property
    def lost(self) -> list[WorkerInfo]:
        return [w for w in self.workers if not w.alive]

    @property
    def partial(self) -> bool:
        return bool(self.lost) or self.interrupted or self.recovered or \
            any(m.aborted for m in self.models)
