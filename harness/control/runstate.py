"""The run's state as the journal tells it: one declared schema for journal records (as
messages.SCHEMA is for the wire) and one state-change function, `RunState.apply`, that the
coordinator calls on each record it journals and recovery calls on each record it reads
back. What a killed run recovers is, by construction, what the live run held.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from harness.control.messages import Malformed, check_cells
from harness.core.outcome import ModelResult, WorkerInfo

# kind -> the fields a record of that kind carries (besides `k` and `at`, the wall time)
RECORDS: dict[str, tuple[str, ...]] = {
    "join": ("worker", "name", "host"),             # a worker was admitted
    "lost": ("worker", "during"),                   # silent past lost_after
    "back": ("worker",),                            # a lost worker spoke again
    "refused": ("reason",),                         # a peer refused (version, handshake)
    "model": ("model", "label", "started"),         # a model's START went out
    "stats": ("model", "worker", "cells", "sent", "seq"),   # one STATS accepted
    "done": ("model", "worker", "totals", "error"),          # a worker's DONE
    "model_end": ("model", "ended", "aborted"),
}
# a worker's own journal (harness worker --journal): it opens with the run it belongs to,
# then its STATS and DONE as the run journal holds them (`harness report --add` merges)
WORKER_RECORDS: dict[str, tuple[str, ...]] = {
    "join": ("run", "worker", "name"),
    "stats": RECORDS["stats"],
    "done": RECORDS["done"],
}


def record(kind: str, schema: dict[str, tuple[str, ...]] = RECORDS, /,
           **fields: Any) -> dict[str, Any]:
    """A journal record of a kind `schema` declares, stamped now; a field missing or
    unknown is a programming error, caught here rather than by a recovery months later."""
    wanted = schema[kind]
    if set(fields) != set(wanted):
        raise ValueError(f"journal record {kind!r}: fields {sorted(fields)}, "
                         f"declared {sorted(wanted)}")
    return {"k": kind, "at": time.time(), **fields}


def well_formed(r: Any) -> bool:
    """A record read back has a declared kind and its fields (a worker journal's `join`
    carries the run's name too)."""
    return isinstance(r, dict) and r.get("k") in RECORDS and "at" in r \
        and all(f in r for f in RECORDS[r["k"]])


@dataclass
class RunState:
    """Workers by index, models by index and refusals: everything a RunOutcome needs that
    the journal can say. The live coordinator adds what only it knows (identities, when it
    last heard a worker) on the same WorkerInfo objects."""

    workers: dict[int, WorkerInfo] = field(default_factory=dict)
    models: dict[int, ModelResult] = field(default_factory=dict)
    refused: int = 0

    def apply(self, r: dict[str, Any], cells: list[Any] | None = None) -> Any:
        """Change the state by one record; returns the WorkerInfo or ModelResult it
        touched (None for a record about something unknown: it changes nothing). A STATS
        record whose cells do not decode raises Malformed before anything changes
        (`cells`: its cells, checked already by a caller that had to before journaling)."""
        kind = r["k"]
        if kind == "join":
            info = WorkerInfo(b"", r["name"], r["worker"], r["host"], 0.0)
            self.workers[info.index] = info
            return info
        if kind == "refused":
            self.refused += 1
            return None
        if kind == "model":
            result = self.models.get(r["model"])
            if result is None:   # read back: aborted until its model_end says otherwise
                result = self.models[r["model"]] = ModelResult(r["label"], r["model"],
                                                               aborted=True)
            result.started_wall = r["started"]
            return result
        if kind in ("lost", "back"):
            worker = self.workers.get(r["worker"])
            if worker is None:
                return None
            if kind == "lost":
                worker.lost_at, worker.lost_during = r["at"], r["during"]
            else:
                worker.gaps.append((worker.lost_at or r["at"], r["at"]))
                worker.lost_at = None
            return worker
        result = self.models.get(r["model"])
        if result is None:
            return None
        if kind == "stats":
            w = r["worker"]
            for second, name, wire in cells if cells is not None else check_cells(r["cells"]):
                result.add_wire(second, name, wire)
                if second > result.newest.get(w, -1):
                    result.newest[w] = second
            result.sent_seen[w] = max(result.sent_seen.get(w, 0), r["sent"])
        elif kind == "done":
            result.totals[r["worker"]] = dict(r["totals"])
            if r["error"]:
                worker = self.workers.get(r["worker"])
                who = worker.name if worker is not None else f"worker {r['worker']}"
                result.errors.append(f"{who}: {r['error']}")
        elif kind == "model_end":
            result.ended_wall, result.aborted = r["ended"], r["aborted"]
        return result

    def ordered_models(self) -> list[ModelResult]:
        return [self.models[i] for i in sorted(self.models)]

    def ordered_workers(self) -> list[WorkerInfo]:
        return [self.workers[i] for i in sorted(self.workers)]


__all__ = ["RECORDS", "WORKER_RECORDS", "Malformed", "RunState", "record", "well_formed"]
