"""What a run measured, as the coordinator hands it on: workers, per-model merged cells.

Kept apart from the coordinator so results, reports and progress read these types without
importing the socket loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.stats import IntervalStats, add_cell


@dataclass
class WorkerInfo:
    identity: bytes
    name: str
    index: int
    host: str
    last_heard: float
    lost_at: float | None = None
    lost_during: str | None = None

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
    """One model's merged results. Histograms arrive encoded and are decoded by `merge()`:
    decoding is the coordinator's main cost, and deferring it keeps a run with hundreds of
    workers cheap while it lasts (the merge stays exact, only later)."""

    label: str
    index: int
    pending: dict[tuple[int, str], list[dict[str, Any]]] = field(default_factory=dict)
    tallies: dict[int, Tally] = field(default_factory=dict)
    totals: dict[int, dict[str, Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    started_wall: float = 0.0
    ended_wall: float = 0.0
    aborted: bool = False
    undecodable: int = 0
    cells: dict[tuple[int, str], IntervalStats] = field(default_factory=dict)

    def add_wire(self, interval: int, name: str, wire: dict[str, Any]) -> None:
        self.pending.setdefault((interval, name), []).append(wire)
        tally = self.tallies.setdefault(interval, Tally())
        tally.requests += wire["n"]
        tally.errors += sum(wire["errors"].values())
        tally.worst_p99_us = max(tally.worst_p99_us, wire.get("p99_us", 0))

    def merge(self) -> int:
        """Decode what is pending into `cells`, merged exactly across workers; returns how
        many histograms did not decode (they are dropped and counted)."""
        pending, self.pending = self.pending, {}
        bad = 0
        for key, wires in pending.items():
            for wire in wires:
                try:
                    cell = IntervalStats.from_wire(wire)
                except Exception:  # hdrh raises several types on a corrupt histogram
                    bad += 1
                    continue
                add_cell(self.cells, key, cell)
        self.undecodable += bad
        return bad


@dataclass
class RunOutcome:
    models: list[ModelResult]
    workers: list[WorkerInfo]
    dropped_messages: int
    refused_workers: int
    interrupted: bool

    @property
    def lost(self) -> list[WorkerInfo]:
        return [w for w in self.workers if not w.alive]

    @property
    def partial(self) -> bool:
        return bool(self.lost) or self.interrupted or any(m.aborted for m in self.models)
