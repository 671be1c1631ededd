"""Who takes part in a run: workers admitted by HELLO up to the expected number, spares
beyond it (they wait for the end), a worker silent past lost_after marked lost and
re-admitted when it speaks again.

No socket here: the coordinator hands in what arrived and sends what this decides, and
every change of membership is a journal record (runstate.RECORDS: join, lost, back) made
through the coordinator's `record`, so recovery sees the same changes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from harness.core.outcome import WorkerInfo

# record(kind, **fields) -> what RunState.apply returned (the coordinator journals first)
Record = Callable[..., Any]


class Membership:
    def __init__(self, expect: int, lost_after_s: float, record: Record) -> None:
        self.expect = expect
        self.lost_after_s = lost_after_s
        self.record = record
        self.workers: dict[bytes, WorkerInfo] = {}
        self.spares: set[bytes] = set()
        self.accepting = True

    def hello(self, identity: bytes, name: str, host: str) -> tuple[str, WorkerInfo | None]:
        """A HELLO: ("WELCOME", the worker) when admitted (again, for a repeated one), or
        ("SPARE", None) when the run has all its workers (compose --scale above WORKERS:
        a spare waits for BYE instead of failing, which would stop a whole stack)."""
        worker = self.workers.get(identity)
        if worker is not None:
            return "WELCOME", worker
        if not self.accepting or len(self.workers) >= self.expect:
            if identity not in self.spares:
                self.spares.add(identity)
                print(f"coordinator: {name} waits as a spare (the run has all "
                      f"{self.expect} workers)", file=sys.stderr)
            return "SPARE", None
        worker = self.record("join", worker=len(self.workers), name=name, host=host)
        worker.identity, worker.last_heard = identity, time.monotonic()
        self.workers[identity] = worker
        return "WELCOME", worker

    def heard(self, identity: bytes) -> WorkerInfo | None:
        """A message from `identity`: its worker (re-admitted if it was lost), or None
        for a peer that is not one of ours."""
        worker = self.workers.get(identity)
        if worker is None:
            return None
        if not worker.alive:
            self.record("back", worker=worker.index)
            gap = worker.gaps[-1][1] - worker.gaps[-1][0]
            print(f"coordinator: {worker.name} is back after {gap:.1f}s; re-admitted",
                  file=sys.stderr)
        worker.last_heard = time.monotonic()
        return worker

    def check_lost(self, now: float, during: str | None) -> None:
        """Mark every worker silent past lost_after as lost (`during`: the model running)."""
        for w in self.alive():
            if now - w.last_heard > self.lost_after_s:
                self.record("lost", worker=w.index, during=during)

    def alive(self) -> list[WorkerInfo]:
        return [w for w in self.workers.values() if w.alive]

    def complete(self) -> bool:
        return len(self.workers) >= self.expect
