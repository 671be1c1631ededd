"""The one interface every client model implements: what the worker calls, and nothing else.

A worker builds a model from a Job (at PREPARE), waits until it is `ready()`, `start`s it
at the run's start time, `drain`s finished intervals while it runs, `wait`s for the end,
and reads `totals()` and `error`. `stop()` asks the users to finish; `kill()` ends them
now. The worker always drives a ProcessModel (the load in processes of its own), which
runs a LocalModel -- the concurrency model proper -- inside each of its processes.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from harness.clients.pacing import Pacer
from harness.core.failures import NOT_ON_WIRE
from harness.core.job import Job
from harness.core.registry import protocol_of
from harness.stats import IntervalStats, Recorder


class ClientModel(ABC):
    """Prepare, start, drain while running, wait, stop or kill."""

    error: str | BaseException | None = None  # set when the model failed (not a request)

    def ready(self) -> bool:
        """True once the model can start at once (its processes are up and imported)."""
        return True

    @abstractmethod
    def start(self, job: Job, t0: float) -> None:
        """Begin sending at perf_counter time t0 (every worker starts at the same offset)."""

    @abstractmethod
    def drain(self, whole_only: bool = False) -> dict[tuple[int, str], IntervalStats]:
        """What was measured since the last drain: everything (intervals may come out
        partial), or with `whole_only` the intervals that have ended."""

    def drain_wires(self, whole_only: bool = False) -> list[list[Any]]:
        """`drain` as STATS carries it: [interval, name, encoded cell] (a model in
        processes forwards its processes' encoded cells without decoding them)."""
        return [[k, name, cell.to_wire()] for (k, name), cell in self.drain(whole_only).items()]

    @abstractmethod
    def wait(self, timeout: float) -> bool:
        """True once every user has finished."""

    @abstractmethod
    def stop(self) -> None:
        """Ask every user to finish its request in flight and stop."""

    def kill(self) -> None:
        """End the load now (the coordinator said BYE or ABORT before START)."""
        self.stop()

    def sent(self) -> int:
        """Requests put on the wire so far (travels with every STATS)."""
        return 0

    def beat(self) -> None:  # noqa: B027 - optional: only a model in processes needs it
        """The worker is alive: called with every drain while the model runs."""

    @abstractmethod
    def totals(self) -> dict[str, Any]:
        """requests sent (warm-up included), late and skipped sends, client CPU seconds."""

    def pids(self) -> list[int]:
        """Processes whose CPU and memory belong to this model (besides the worker)."""
        return []


class LocalModel(ClientModel):
    """Runs in this process: a Recorder, a Pacer and background threads."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.recorder: Recorder | None = None
        self.pacer: Pacer | None = None
        self.error: BaseException | None = None

    def start(self, job: Job, t0: float) -> None:
        self.prepare(job, t0)
        self.launch()

    def prepare(self, job: Job, t0: float) -> None:
        self.job = job
        self.pacer = Pacer(job, t0)
        self.recorder = Recorder(job.result_names,
                                 int(self.pacer.t_measure * 1e9), users=job.concurrency,
                                 not_on_wire=NOT_ON_WIRE)
        # imported here, not at the top: a Locust load process must patch ssl for gevent
        # before anything imports it
        from harness.transports.tls import Handshakes
        self.handshakes = Handshakes()
        self.wire_counts: dict[str, int] | None = None   # a transport's connections/streams

    def handshake_note(self) -> Callable[[int, int, Any], None]:
        """What this model's clients call after each TLS handshake (transports/tls.py)."""
        from harness.transports.tls import handshake_note
        assert self.recorder is not None
        return handshake_note(self.recorder, self.handshakes)

    @abstractmethod
    def launch(self) -> None:
        """Start the background threads that send the load."""

    def run_foreground(self, tick: Callable[[], None], every: float) -> None:
        """Run to the end in this thread's keeping, calling tick() every `every` seconds
        (a load process ships its stats from there)."""
        self.launch()
        while not self.wait(every):
            tick()

    def spawn(self, target: Callable[..., Any], *args: Any) -> None:
        def guarded() -> None:
            try:
                target(*args)
            except BaseException as exc:  # surfaced by the worker as a failed run
                self.error = exc
                if self.pacer is not None:
                    self.pacer.stopped = True
        thread = threading.Thread(target=guarded, daemon=True)
        thread.start()
        self.threads.append(thread)

    def drain(self, whole_only: bool = False) -> dict[tuple[int, str], IntervalStats]:
        assert self.recorder is not None
        return self.recorder.drain(whole_only)

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self.threads)

    def stop(self) -> None:
        if self.pacer is not None:
            self.pacer.stopped = True

    def sent(self) -> int:
        """Requests put on the wire: those that failed before reaching HTTP (a refused
        connect, a failed TLS handshake) are not sent, as the target never saw them."""
        rec = self.recorder
        return sum(rec.sent) - rec.unsent if rec is not None else 0

    def totals(self) -> dict[str, Any]:
        rec, pacer = self.recorder, self.pacer
        assert rec is not None and pacer is not None
        skipped = rec.skipped + pacer.skipped(time.perf_counter())
        return {"sent": sum(rec.sent) - rec.unsent, "not_sent": rec.unsent,
                "late": sum(rec.late), "lagged": sum(rec.lagged), "skipped": skipped,
                # open model: what the schedule meant to send in the measured window
                "intended": pacer.intended + skipped if self.job.mode == "open" else 0,
                "tls": self.handshakes.totals(),
                "protocol": protocol_of(self.job.model, self.job.engine, self.job.sub_model,
                                        self.job.http),
                **({"h2": dict(self.wire_counts)} if self.wire_counts else {})}
