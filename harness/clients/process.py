"""The process model: P processes, each running a thread or asyncio sub-model on its share.

Children are spawned (not forked: the worker holds a ZeroMQ context, which must not cross
a fork). Each child drains its own recorder every quarter second and ships the encoded
intervals to the parent over a multiprocessing queue; the parent merges them like any
other model's, so the worker cannot tell the difference.
"""

from __future__ import annotations

import multiprocessing
import queue
import resource
import time
from typing import Any

from harness.clients.base import ClientModel
from harness.plan import Job
from harness.stats import IntervalStats


def _child(job_wire: dict[str, Any], t0: float, out: Any, stop: Any) -> None:
    from harness.clients import create_local

    job = Job.from_wire(job_wire)
    model = create_local(job.sub_model, job)
    model.start(job, t0)
    error = ""
    while not model.wait(0.25):
        if stop.is_set():
            model.stop()
        out.put(("stats", _wire(model.drain(time.perf_counter_ns()))))
    if model.error is not None:
        error = repr(model.error)
    out.put(("stats", _wire(model.drain(None))))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.put(("done", {**model.totals(), "cpu_s": usage.ru_utime + usage.ru_stime}, error))


def _wire(cells: dict[tuple[int, str], IntervalStats]) -> list[Any]:
    return [(k, name, cell.to_wire()) for (k, name), cell in cells.items()]


class ProcessModel(ClientModel):
    def __init__(self) -> None:
        self.ctx = multiprocessing.get_context("spawn")
        self.procs: list[Any] = []
        self.pending: dict[tuple[int, str], IntervalStats] = {}
        self.done: list[dict[str, int]] = []
        self.errors: list[str] = []
        self.error: str | None = None

    def start(self, job: Job, t0: float) -> None:
        self.out = self.ctx.Queue()
        self.stop_event = self.ctx.Event()
        parts = min(job.processes, job.concurrency)
        for i in range(parts):
            share = job.with_share(i, parts)
            proc = self.ctx.Process(target=_child, args=(share.to_wire(), t0, self.out,
                                                         self.stop_event), daemon=True)
            proc.start()
            self.procs.append(proc)

    def _pump(self, block_s: float = 0.0) -> None:
        deadline = time.monotonic() + block_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                msg = self.out.get(timeout=remaining) if remaining > 0 else self.out.get_nowait()
            except queue.Empty:
                return
            if msg[0] == "stats":
                for k, name, cell in msg[1]:
                    stats = IntervalStats.from_wire(cell)
                    if (k, name) in self.pending:
                        self.pending[(k, name)].add(stats)
                    else:
                        self.pending[(k, name)] = stats
            else:
                self.done.append(msg[1])
                if msg[2]:
                    self.errors.append(msg[2])
                    self.error = msg[2]

    def drain(self, before_ns: int | None) -> dict[tuple[int, str], IntervalStats]:
        self._pump()
        out, self.pending = self.pending, {}
        return out

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.done) < len(self.procs):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._pump(min(remaining, 0.1))
            if len(self.done) < len(self.procs) and not any(p.is_alive() for p in self.procs):
                self._pump(0.5)
                if len(self.done) < len(self.procs):
                    self.error = "a client process died"
                    return True
        for proc in self.procs:
            proc.join(5)
        return True

    def stop(self) -> None:
        self.stop_event.set()

    def totals(self) -> dict[str, int]:
        out = {"sent": 0, "late": 0, "skipped": 0}
        for totals in self.done:
            for key in out:
                out[key] += totals[key]
        return out

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]
