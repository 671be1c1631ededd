"""The coordinator: a ROUTER socket that runs each model across its workers and merges.

Lifecycle per model: PREPARE (each worker's slice) -> READY from all -> START (run begins
`start_in` seconds after receipt, so every worker begins together) -> STATS per interval
-> DONE. Heartbeats go both ways; a worker silent for lost_after_s is marked lost and its
received intervals are kept; one that speaks again is re-admitted, and the run is
partial only if a worker stays lost. Every accepted message goes to the journal first.
Malformed frames are dropped and counted, never fatal.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from harness.control import messages
from harness.control.datasend import DataShipper
from harness.control.journal import Journal
from harness.control.membership import Membership
from harness.control.messages import HEARTBEAT_S, LOST_AFTER_S, Malformed, VersionMismatch
from harness.control.plan import make_job
from harness.control.router import Router
from harness.control.runstate import RunState, record
from harness.core.outcome import ModelResult, RunOutcome, WorkerInfo
from harness.core.timing import MAX_COUNT_RUN_S
from harness.errors import CoordinatorError
from harness.scenario import Scenario

START_IN_S = 0.5
READY_TIMEOUT_S = 30.0
DONE_GRACE_S = 15.0
DATA_TIMEOUT_S = 30.0    # [[data]] to the workers: this long, plus the bytes at ...
DATA_MIN_RATE = 1 << 20  # ... a megabyte a second, the slowest link we wait for


# Called about four times a second while a model runs, and once when it ends: (its result
# so far, seconds since its start, extra fields: `workers`, and `ended` at the end). The
# terminal progress display and the dashboard's board are such hooks.
ProgressHook = Callable[[ModelResult, float, dict[str, Any]], None]
# What runs one model of the scenario in place of run_model: (coordinator, index, model) ->
# the results it produced (a capacity search: one per step)
ModelRunner = Callable[[Any, int, Any], list[ModelResult]]


class Coordinator:
    """Orchestration: each model across its workers, one after another. The socket is a
    Router's, membership a Membership's, and the run's state a RunState changed only by
    journal records (`record`), the way recovery changes it."""

    def __init__(self, scenario: Scenario, url: str, bind: str, expect_workers: int,
                 progress: ProgressHook | None = None, curve_secret: bytes | None = None,
                 authenticator: Any = None, journal: Journal | None = None,
                 sink: Any = None, lost_after_s: float = LOST_AFTER_S,
                 stop: Any = None, run_id: str = "") -> None:
        self.scenario = scenario
        self.run_id = run_id         # told to workers: their journals name the run
        self.shipper = DataShipper()  # [[data]] bytes, apart from PREPARE
        self.stop = stop             # a threading.Event another thread may set: Ctrl-C's effect
        self.journal = journal
        self.sink = sink             # reports.intervals.IntervalSink: closed intervals go out
        self.url = url
        self.alpn: str | None = None   # what http = "auto" came to
        self.progress = progress
        self.router = Router(bind, curve_secret, authenticator)
        self.endpoint = self.router.endpoint
        self.state = RunState()
        self.members = Membership(expect_workers, lost_after_s, self.record)
        self.dropped = 0
        self.interrupted = False
        self.last_beat = 0.0
        self.last_check = 0.0
        self.current: ModelResult | None = None
        self.ready: set[bytes] = set()
        self.done: set[bytes] = set()
        self.taking_part: set[bytes] = set()

    @property
    def refused(self) -> int:
        """Peers refused: a protocol version we do not speak, a CURVE handshake failed."""
        return self.state.refused

    # -- the state: journal first, then the one state change -------------------------------

    def record(self, kind: str, checked: list[Any] | None = None, /, **fields: Any) -> Any:
        """A journal record (runstate.RECORDS) written, then applied to the run's state:
        the same change recovery makes when it reads the record back."""
        r = record(kind, **fields)
        if self.journal is not None:
            self.journal.append_record(r)
            if kind == "model_end":
                # a model's end is on disk before anything acts on it: between models
                # (a capacity step judged, the next one prepared) no poll loop flushes,
                # and a kill there lost the end of a step already judged and printed
                self.journal.flush()
        return self.state.apply(r, checked)

    # -- messaging --------------------------------------------------------------------------

    def send(self, identity: bytes, kind: str, **fields: Any) -> None:
        self.router.send(identity, kind, **fields)

    def broadcast(self, kind: str, **fields: Any) -> None:
        # heartbeats reach lost workers too: one back from a partition hears us again
        members = self.members
        for w in members.workers.values() if kind == "HEARTBEAT" else members.alive():
            self.send(w.identity, kind, **fields)
        if kind in ("HEARTBEAT", "WRAPUP", "BYE"):  # spares only wait for the end
            for identity in members.spares:
                self.send(identity, kind, **fields)

    def alive(self) -> list[WorkerInfo]:
        return self.members.alive()

    def pump(self, timeout_s: float) -> None:
        """Handle every message arriving within timeout_s; heartbeats and loss checks."""
        deadline = time.monotonic() + timeout_s
        while True:
            frames = self.router.receive(max(0.0, deadline - time.monotonic()))
            if frames is not None:
                self.handle(frames)
            self.housekeeping()
            if time.monotonic() >= deadline or self.interrupted:
                return

    def handle(self, frames: list[bytes]) -> None:
        if len(frames) != 2:
            self.dropped += 1
            return
        identity, frame = frames
        try:
            msg = messages.decode(frame)
        except VersionMismatch as exc:
            self.send(identity, "REFUSE", reason=str(exc))
            self.record("refused", reason=str(exc))
            print(f"coordinator: refused a worker: {exc}", file=sys.stderr)
            return
        except Malformed:
            self.dropped += 1
            return
        kind = msg["t"]
        if kind == "HELLO":
            reply, worker = self.members.hello(identity, msg["name"], msg["host"])
            if worker is None:
                self.send(identity, reply)
            else:
                self.send(identity, reply, index=worker.index,
                          lost_after=self.members.lost_after_s, run=self.run_id)
            return
        if identity in self.members.spares:
            return  # a spare's heartbeats: it only waits for the end
        worker = self.members.heard(identity)
        if worker is None:
            self.dropped += 1  # not one of ours: nothing it says counts
            return
        current = self.current
        try:
            if kind == "READY" and current and msg["model"] == current.index:
                self.ready.add(identity)
            elif kind == "STATS" and current and msg["model"] == current.index:
                cells = messages.check_cells(msg["cells"])
                self.record("stats", cells, model=current.index, worker=worker.index,
                            cells=msg["cells"], sent=msg["sent"], seq=msg["seq"])
            elif kind == "HAVE":
                self.shipper.ack(identity, msg["table"], msg["got"])
            elif kind == "DONE" and current and msg["model"] == current.index:
                self.record("done", model=current.index, worker=worker.index,
                            totals=msg["totals"], error=msg["error"])
                self.done.add(identity)
            elif kind != "HEARTBEAT":
                self.dropped += 1
        except (Malformed, ValueError, TypeError, KeyError):
            self.dropped += 1  # a STATS whose histogram does not decode, and the like

    def housekeeping(self) -> None:
        """Heartbeats out, silent workers marked lost: at most ten times a second, so a
        coordinator with hundreds of workers does not scan them all per message."""
        now = time.monotonic()
        if now - self.last_check < 0.1:
            return
        self.last_check = now
        if self.stop is not None and self.stop.is_set():
            self.interrupted = True
        if now - self.last_beat >= HEARTBEAT_S:
            self.broadcast("HEARTBEAT")
            self.last_beat = now
        self.members.check_lost(now, self.current.label if self.current else None)
        if self.journal is not None:
            self.journal.flush(force=False)
        self._count_refusals()

    def _count_refusals(self) -> None:
        for _ in range(self.router.refused_handshakes()):
            self.record("refused", reason="handshake")

    # -- the run ----------------------------------------------------------------------------

    def wait_for_workers(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        members = self.members
        while not members.complete():
            if time.monotonic() > deadline or self.interrupted:
                raise CoordinatorError(f"expected {members.expect} workers at "
                                       f"{self.endpoint}, {len(members.workers)} came within "
                                       f"{timeout_s:.0f}s")
            self.pump(0.1)
        members.accepting = False

    def run(self, worker_timeout_s: float = 60.0, runner: ModelRunner | None = None
            ) -> RunOutcome:
        """Every model, one after another; then WRAPUP: workers wait for `bye()`, which the
        caller sends once the results are written (compose stops a stack when its first
        container exits: a worker must not exit while the coordinator writes)."""
        previous = {sig: signal.signal(sig, self._interrupt)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        results: list[ModelResult] = []
        try:
            self.wait_for_workers(worker_timeout_s)
            for index, model in enumerate(self.scenario.models):
                if self.interrupted or not self.alive():
                    break
                results += runner(self, index, model) if runner is not None \
                    else [self.run_model(index, model)]
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.broadcast("WRAPUP")
            self.pump(0.1)
        self._count_refusals()
        return RunOutcome(results, list(self.members.workers.values()), self.dropped,
                          self.refused, self.interrupted)

    def http(self, sc: Scenario, model: Any) -> str:
        """The protocol the models speak: [target].http, "auto" resolved once per run by
        one ALPN handshake with the target."""
        if sc.http != "auto":
            return sc.http
        if self.alpn is None:
            from harness.transports.tls import negotiated_http
            self.alpn = negotiated_http(make_job(sc, model, self.url, 0, 1))
        return self.alpn

    def run_model(self, index: int, model: Any, scenario: Scenario | None = None,
                  label: str | None = None) -> ModelResult:
        """One model across the workers; `scenario` and `label` for a step of a capacity
        search (its own load, duration and name; `index` past the scenario's models)."""
        sc = scenario or self.scenario
        label = label or model.label
        result = self.state.models[index] = ModelResult(label, index)
        if scenario is not None:
            result.window = (sc.warmup_s, sc.run_seconds)
        self.current = result
        self.ready, self.done = set(), set()
        workers = self.alive()
        # a worker back from a partition after PREPARE has no part in this model
        self.taking_part = {w.identity for w in workers}
        jobs = {}
        http = self.http(sc, model)
        for w in workers:
            jobs[w.identity] = make_job(sc, model, self.url, w.index, len(workers),
                                        http).to_wire()
            self.shipper.plan(w.identity, jobs[w.identity]["data"])
        if not self._ship_data(result):
            return result
        for w in workers:
            self.send(w.identity, "PREPARE", model=index, job=jobs[w.identity])
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self._taking_part() <= self.ready:
            if time.monotonic() > deadline or self.interrupted:
                result.aborted = True
                return result
            self.pump(0.05)
        self.record("model", model=index, label=label, started=time.time() + START_IN_S)
        self.broadcast("START", model=index, start_in=START_IN_S)
        t_start = time.monotonic() + START_IN_S
        budget = START_IN_S + sc.warmup_s + (sc.run_seconds or MAX_COUNT_RUN_S) + sc.timeout_s \
            + DONE_GRACE_S
        aborted_at = stopping_at = None
        while not self._taking_part() <= self.done:
            now = time.monotonic()
            if result.stop_requested and stopping_at is None:
                # auto-stop (a threshold crossed for abort_after): stopped early, not
                # aborted -- every worker still sends what it measured and its DONE
                self.broadcast("ABORT", reason="thresholds")
                stopping_at = now
            if (self.interrupted or now - t_start > budget) and aborted_at is None:
                self.broadcast("ABORT", reason="interrupted" if self.interrupted
                               else "over time")
                result.aborted = True
                aborted_at = now
            if aborted_at is not None and now - aborted_at > 5.0:
                break
            self.pump(0.25)
            if self.progress is not None:
                self.progress(result, max(0.0, time.monotonic() - t_start),
                              self._progress_extra(result))
            if self.sink is not None:
                # every worker taking part has moved past an interval: it is complete too
                newest = [result.newest.get(w.index, -1) for w in self.alive()
                          if w.identity in self.taking_part]
                self.sink.advance(result, min(newest, default=-1))
        self.record("model_end", model=index, ended=time.time(), aborted=result.aborted)
        self.current = None
        if self.sink is not None:
            self.sink.finish(result)
        else:
            result.take()
        if self.progress is not None:
            self.progress(result, max(0.0, time.monotonic() - t_start),
                          {**self._progress_extra(result), "ended": True})
        self.dropped += result.undecodable  # corrupt histograms count as dropped
        return result

    def _progress_extra(self, result: ModelResult) -> dict[str, Any]:
        """The workers as a watcher sees them: name, host, alive, requests sent."""
        sent = result.sent_seen
        return {"workers": [{"name": w.name, "host": w.host, "alive": w.alive,
                             "sent": sent.get(w.index, 0)} for w in self.members.workers.values()]}

    def _ship_data(self, result: ModelResult) -> bool:
        """[[data]] to the workers taking part, before PREPARE (control.datasend); False
        when a worker did not take it in time (the model is aborted, said in one line)."""
        missing = self.shipper.missing(self.taking_part)
        if not missing:
            return True
        total = self.shipper.total(self.taking_part)
        started = time.monotonic()
        deadline = started + DATA_TIMEOUT_S + missing / DATA_MIN_RATE
        print(f"coordinator: sending [[data]]: {missing / 2**20:.1f} MiB to "
              f"{len(self.taking_part)} worker(s)", file=sys.stderr, flush=True)
        while self.shipper.missing(self._taking_part()):
            if time.monotonic() > deadline or self.interrupted:
                left = self.shipper.missing(self._taking_part())
                result.aborted = True
                result.errors.append(f"[[data]]: {left / 2**20:.1f} of {total / 2**20:.1f} "
                                     "MiB not acknowledged by the workers in time")
                return False
            self.shipper.step(self.send)
            self.pump(0.02)
        print(f"coordinator: [[data]] sent in {time.monotonic() - started:.1f} s",
              file=sys.stderr, flush=True)
        return True

    def _taking_part(self) -> set[bytes]:
        return {w.identity for w in self.alive()} & self.taking_part

    def _interrupt(self, signum: int, frame: Any) -> None:
        self.interrupted = True

    def bye(self) -> None:
        """The run is over and written: workers and spares may go."""
        self.broadcast("BYE")

    def close(self) -> None:
        self.router.close()
