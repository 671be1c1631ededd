"""The coordinator: a ROUTER socket that runs each model across its workers and merges.

Lifecycle per model: PREPARE (each worker's slice) -> READY from all -> START (run begins
`start_in` seconds after receipt, so every worker begins together) -> STATS per interval
-> DONE. Heartbeats go both ways; a worker silent for LOST_AFTER_S is marked lost, its
received intervals are kept, and the run is partial. Malformed frames are dropped and
counted, never fatal.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import zmq

from harness.control import messages
from harness.control.job import make_job
from harness.control.messages import HEARTBEAT_S, LOST_AFTER_S, Malformed, VersionMismatch
from harness.control.outcome import ModelResult, RunOutcome, WorkerInfo
from harness.errors import CoordinatorError
from harness.scenario import Scenario

START_IN_S = 0.5
READY_TIMEOUT_S = 30.0
DONE_GRACE_S = 15.0


# Called about four times a second while a model runs: (its result so far, seconds since
# its start, extra fields). The terminal progress display is one such hook.
ProgressHook = Callable[[ModelResult, float, dict[str, Any]], None]


class Coordinator:
    def __init__(self, scenario: Scenario, url: str, bind: str, expect_workers: int,
                 progress: ProgressHook | None = None, curve_secret: bytes | None = None,
                 authenticator: Any = None) -> None:
        self.scenario = scenario
        self.url = url
        self.expect = expect_workers
        self.progress = progress
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 1000)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 0)
        if curve_secret is not None:
            self.sock.curve_server = True
            self.sock.curve_secretkey = curve_secret
        self.authenticator = authenticator
        try:
            if bind.endswith(":0"):
                port = self.sock.bind_to_random_port(bind.rsplit(":", 1)[0])
                self.endpoint = f"{bind.rsplit(':', 1)[0]}:{port}"
            else:
                self.sock.bind(bind)
                self.endpoint = bind
        except zmq.ZMQError as exc:
            self.sock.close()
            raise CoordinatorError(f"cannot bind {bind}: {exc}") from None
        self.workers: dict[bytes, WorkerInfo] = {}
        self.dropped = 0
        self.refused = 0
        self.interrupted = False
        self.accepting = True
        self.last_beat = 0.0
        self.last_check = 0.0
        self.current: ModelResult | None = None
        self.ready: set[bytes] = set()
        self.done: set[bytes] = set()
        self.spares: set[bytes] = set()

    # -- messaging --------------------------------------------------------------------------

    def send(self, identity: bytes, kind: str, **fields: Any) -> None:
        try:
            self.sock.send_multipart([identity, messages.encode(kind, **fields)],
                                     flags=zmq.NOBLOCK)
        except zmq.Again:
            pass  # a worker that cannot take messages is caught by the heartbeat check

    def broadcast(self, kind: str, **fields: Any) -> None:
        for w in self.alive():
            self.send(w.identity, kind, **fields)
        if kind in ("HEARTBEAT", "WRAPUP", "BYE"):  # spares only wait for the end
            for identity in self.spares:
                self.send(identity, kind, **fields)

    def alive(self) -> list[WorkerInfo]:
        return [w for w in self.workers.values() if w.alive]

    def pump(self, timeout_s: float) -> None:
        """Handle every message arriving within timeout_s; heartbeats and loss checks."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            if self.sock.poll(int(remaining * 1000)):
                frames = self.sock.recv_multipart()
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
            self.refused += 1
            self.send(identity, "REFUSE", reason=str(exc))
            print(f"coordinator: refused a worker: {exc}", file=sys.stderr)
            return
        except Malformed:
            self.dropped += 1
            return
        kind = msg["t"]
        worker = self.workers.get(identity)
        if kind == "HELLO":
            self.on_hello(identity, msg, worker)
            return
        if identity in self.spares:
            return  # a spare's heartbeats: it only waits for the end
        if worker is None or not worker.alive:
            self.dropped += 1  # not one of ours (or declared lost): nothing it says counts
            return
        worker.last_heard = time.monotonic()
        current = self.current
        try:
            if kind == "READY" and current and msg["model"] == current.index:
                self.ready.add(identity)
            elif kind == "STATS" and current and msg["model"] == current.index:
                for k, name, wire in messages.check_cells(msg["cells"]):
                    current.add_wire(k, name, wire)
            elif kind == "DONE" and current and msg["model"] == current.index:
                current.totals[worker.index] = dict(msg["totals"])
                if msg["error"]:
                    current.errors.append(f"{worker.name}: {msg['error']}")
                self.done.add(identity)
            elif kind != "HEARTBEAT":
                self.dropped += 1
        except (Malformed, ValueError, TypeError, KeyError):
            self.dropped += 1  # a STATS whose histogram does not decode, and the like

    def on_hello(self, identity: bytes, msg: dict[str, Any], worker: WorkerInfo | None) -> None:
        if worker is not None:
            self.send(identity, "WELCOME", index=worker.index)  # a repeated HELLO
            return
        if not self.accepting or len(self.workers) >= self.expect:
            # one worker too many (compose --scale above WORKERS): a spare waits for BYE
            # instead of failing, which would stop a whole compose stack
            if identity not in self.spares:
                self.spares.add(identity)
                print(f"coordinator: {msg['name']} waits as a spare (the run has all "
                      f"{self.expect} workers)", file=sys.stderr)
            self.send(identity, "SPARE")
            return
        info = WorkerInfo(identity, msg["name"], len(self.workers), msg["host"],
                          time.monotonic())
        self.workers[identity] = info
        self.send(identity, "WELCOME", index=info.index)

    def housekeeping(self) -> None:
        """Heartbeats out, silent workers marked lost: at most ten times a second, so a
        coordinator with hundreds of workers does not scan them all per message."""
        now = time.monotonic()
        if now - self.last_check < 0.1:
            return
        self.last_check = now
        if now - self.last_beat >= HEARTBEAT_S:
            self.broadcast("HEARTBEAT")
            self.last_beat = now
        for w in self.alive():
            if now - w.last_heard > LOST_AFTER_S:
                w.lost_at = time.time()
                w.lost_during = self.current.label if self.current else None

    # -- the run ----------------------------------------------------------------------------

    def wait_for_workers(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.workers) < self.expect:
            if time.monotonic() > deadline or self.interrupted:
                raise CoordinatorError(f"expected {self.expect} workers at {self.endpoint}, "
                                       f"{len(self.workers)} came within {timeout_s:.0f}s")
            self.pump(0.1)
        self.accepting = False

    def run(self, worker_timeout_s: float = 60.0) -> RunOutcome:
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
                results.append(self.run_model(index, model))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.broadcast("WRAPUP")
            self.pump(0.1)
        refused = self.refused + (self.authenticator.refused if self.authenticator else 0)
        return RunOutcome(results, list(self.workers.values()), self.dropped, refused,
                          self.interrupted)

    def run_model(self, index: int, model: Any) -> ModelResult:
        result = ModelResult(model.label, index)
        self.current = result
        self.ready, self.done = set(), set()
        workers = self.alive()
        for w in workers:
            job = make_job(self.scenario, model, self.url, w.index, len(workers))
            self.send(w.identity, "PREPARE", model=index, job=job.to_wire())
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not {w.identity for w in self.alive()} <= self.ready:
            if time.monotonic() > deadline or self.interrupted:
                result.aborted = True
                return result
            self.pump(0.05)
        result.started_wall = time.time() + START_IN_S
        self.broadcast("START", model=index, start_in=START_IN_S)
        t_start = time.monotonic() + START_IN_S
        sc = self.scenario
        budget = START_IN_S + sc.warmup_s + (sc.run_seconds or 600.0) + sc.timeout_s \
            + DONE_GRACE_S
        aborted_at = None
        while not {w.identity for w in self.alive()} <= self.done:
            now = time.monotonic()
            if (self.interrupted or now - t_start > budget) and aborted_at is None:
                self.broadcast("ABORT", reason="interrupted" if self.interrupted
                               else "over time")
                result.aborted = True
                aborted_at = now
            if aborted_at is not None and now - aborted_at > 5.0:
                break
            self.pump(0.25)
            if self.progress is not None:
                self.progress(result, max(0.0, time.monotonic() - t_start), {})
        result.ended_wall = time.time()
        self.current = None
        self.dropped += result.merge()  # decode now: corrupt histograms count as dropped
        return result

    def _interrupt(self, signum: int, frame: Any) -> None:
        self.interrupted = True

    def bye(self) -> None:
        """The run is over and written: workers and spares may go."""
        self.broadcast("BYE")

    def close(self) -> None:
        self.sock.close(linger=500)
        if self.authenticator is not None:
            self.authenticator.stop()
