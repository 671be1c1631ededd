"""Load runs in child processes: P of them for the process model, one for every other model.

Why always a child: a worker's control loop (heartbeats, STATS) shares no GIL with the
load. In one process a busy event-loop thread that keeps releasing and retaking the GIL
around its syscalls can starve the control thread for seconds (the GIL convoy effect), and
a starved worker looks dead to its coordinator. It also makes the CPU and memory figures
those of the load alone.

Children are spawned, not forked (the worker holds a ZeroMQ context, which must not cross
a fork), at PREPARE time so their imports are done before READY. Each drains its recorder
every quarter second and ships the encoded intervals over a multiprocessing queue.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import time
from importlib import import_module
from multiprocessing import connection
from typing import Any

from harness.clients.base import ClientModel, LocalModel
from harness.clients.sampler import ClientSampler, cpu_s
from harness.core.job import Job
from harness.core.registry import MODELS
from harness.core.timing import HEARTBEAT_S
from harness.stats import IntervalStats, add_cell, collect_cycles, forward_wires
from harness.transports.base import transport_for


def create_local(model: str) -> LocalModel:
    """The registry's class for `model`, built in this (load) process."""
    module, _, cls = (MODELS[model].local or "").partition(":")
    return getattr(import_module(module), cls)()


WORKER_SILENT_S = 3 * HEARTBEAT_S   # no beat from the worker this long: stop the load
SHIP_AND_EXIT = signal.SIGUSR1   # kill(): ship what was measured, then exit
SHIP_GRACE_S = 1.0


def _child(index: int, job_wire: dict[str, Any], model_name: str, conn: Any) -> None:
    """A load process. Orphaned (its worker was killed with -9), its pipe is broken: it
    stops its load and exits quietly, never a traceback on the run's stderr."""
    try:
        _load_process(index, job_wire, model_name, conn)
    except (BrokenPipeError, ConnectionResetError, EOFError):
        os._exit(0)   # the worker is gone: nobody is left to tell, nothing to flush


def _load_process(index: int, job_wire: dict[str, Any], model_name: str,
                  conn: Any) -> None:
    if MODELS[model_name].gevent:
        from gevent import monkey  # Locust needs gevent's patches, and first

        monkey.patch_all()

    parent = os.getppid()
    job = Job.from_wire(job_wire)
    model = create_local(model_name)
    if MODELS[model_name].transports:
        # the transport's library imported now, before READY: imported after START it cost
        # its first second (aiohttp: ~0.5 s, longer on a busy machine), and a short run
        # on a busy machine sent nothing at all
        transport_for(job)
    conn.send(("ready", index))
    while not conn.poll(0):  # wait for START, but never outlive the worker
        if os.getppid() != parent:
            return
        time.sleep(0.02)  # a sleep, not a blocking poll: gevent (Locust) must get turns
    msg = conn.recv()
    if msg[0] != "start":
        return

    sampler = ClientSampler(msg[1] + job.warmup_s, model, 0.25)
    last_beat = time.monotonic()

    def tick() -> None:
        nonlocal last_beat
        if os.getppid() != parent:
            model.stop()  # the worker is gone (kill -9): no runaway load
        while conn.poll(0):
            kind = conn.recv()[0]
            if kind == "stop":
                model.stop()
            elif kind == "beat":
                last_beat = time.monotonic()
        if time.monotonic() - last_beat > WORKER_SILENT_S:
            model.stop()  # the worker is frozen (SIGSTOP) or wedged: stop sending load
        sampler.sample()
        # each second's cells once it has ended (the rest at the end, in finish)
        conn.send(("stats", _wire(model.drain(whole_only=True)), index, model.sent()))
        collect_cycles()

    cpu_at_start = cpu_s()  # imports and setup are not the load's cost
    model.prepare(job, msg[1])

    def finish() -> None:
        conn.send(("stats", _wire(model.drain()), index, model.sent()))
        error = repr(model.error) if model.error is not None else ""
        conn.send(("done", {**model.totals(), "cpu_s": cpu_s() - cpu_at_start,
                            "saturated_s": sampler.saturated, "sampled_s": sampler.sampled,
                            "saturated_by": sampler.signals, "seconds": sampler.seconds},
                   error, index))

    def ship_and_exit(signum: int, frame: Any) -> None:
        """SHIP_AND_EXIT from the worker (the memory watchdog): a load stuck in a client
        that never yields (Locust's, reading an endless body) cannot hear "stop" on its
        pipe, but a signal handler runs between two bytecodes of any thread: what was
        measured and the sent count go out, then the process ends."""
        finish()
        os._exit(0)

    signal.signal(SHIP_AND_EXIT, ship_and_exit)
    # what imports and setup made lives as long as the process: out of the collector's
    # way, so its passes (automatic, and collect_cycles' each second) scan the load's
    # own objects only
    gc.freeze()
    model.run_foreground(tick, 0.25)
    signal.signal(SHIP_AND_EXIT, signal.SIG_IGN)   # finishing anyway: once only
    finish()


def _wire(cells: dict[tuple[int, str], IntervalStats]) -> list[Any]:
    return [(k, name, cell.to_wire()) for (k, name), cell in cells.items()]


class ProcessModel(ClientModel):
    """The load processes of one model, talked to over pipes (plain writes: no feeder
    thread, which gevent's patched threads would never run)."""

    def __init__(self, job: Job) -> None:
        ctx = multiprocessing.get_context("spawn")
        wraps = MODELS[job.model].wraps
        parts = min(job.processes, job.concurrency) if wraps else 1
        model_name = job.sub_model if wraps else job.model
        self.conns = []
        self.procs = []
        for i in range(parts):
            share = job.with_share(i, parts) if parts > 1 else job
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(target=_child, args=(i, share.to_wire(), model_name, theirs),
                               daemon=True)
            proc.start()
            theirs.close()
            self.conns.append(ours)
            self.procs.append(proc)
        self.ready_count = 0
        self.sent_by: dict[int, int] = {}   # requests sent so far, by load process
        # the load processes' cells, as they came encoded (forwarded so: forward_wires)
        self.pending: dict[tuple[int, str], list[dict[str, Any]]] = {}
        self.done: list[dict[str, Any]] = []
        self.done_by: set[int] = set()   # the load processes that said DONE
        self.error: str | None = None

    def ready(self) -> bool:
        """True once every child has imported and built its model."""
        self._pump()
        if self.ready_count < len(self.procs) and not all(p.is_alive() for p in self.procs):
            self.error = "a client process died while starting"
            return True
        return self.ready_count >= len(self.procs)

    def start(self, job: Job, t0: float) -> None:
        for conn in self.conns:
            conn.send(("start", t0))

    def _pump(self, block_s: float = 0.0) -> None:
        for conn in connection.wait(self.conns, block_s):
            while True:
                try:
                    if not conn.poll(0):
                        break
                    msg = conn.recv()
                except (EOFError, OSError):
                    self.conns.remove(conn)  # that child is gone; wait() notices
                    break
                self._handle(msg)

    def _handle(self, msg: tuple[Any, ...]) -> None:
        if msg[0] == "ready":
            self.ready_count += 1
        elif msg[0] == "stats":
            self.sent_by[msg[2]] = msg[3]
            for k, name, cell in msg[1]:
                self.pending.setdefault((k, name), []).append(cell)
        else:
            self.done.append(msg[1])
            self.done_by.add(msg[3])
            if msg[2]:
                self.error = msg[2]

    def drain(self, whole_only: bool = False) -> dict[tuple[int, str], IntervalStats]:
        """What the load processes shipped (each ships its ended seconds as they end)."""
        out: dict[tuple[int, str], IntervalStats] = {}
        for k, name, wire in self.drain_wires(whole_only):
            add_cell(out, (k, name), IntervalStats.from_wire(wire))
        return out

    def drain_wires(self, whole_only: bool = False) -> list[list[Any]]:
        """The load processes' cells as they came, encoded (stats.forward_wires)."""
        self._pump()
        pending, self.pending = self.pending, {}
        return forward_wires(pending)

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.done) < len(self.procs):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._pump(min(remaining, 0.05))
            if len(self.done) < len(self.procs) and not any(p.is_alive() for p in self.procs):
                self._pump(0.5)
                if len(self.done) < len(self.procs):
                    self.error = "a client process died"
                    return True
        for proc in self.procs:
            proc.join(5)
        return True

    def _tell_all(self, kind: str) -> None:
        for conn in self.conns:
            try:
                conn.send((kind,))
            except OSError:
                pass  # that child is gone; wait() notices

    def stop(self) -> None:
        self._tell_all("stop")

    def sent(self) -> int:
        return sum(self.sent_by.values())

    def beat(self) -> None:
        self._tell_all("beat")

    def kill(self) -> None:
        """End the load processes now: each is asked to ship what it measured and exit
        (SHIP_AND_EXIT), and killed if it has not within a second."""
        alive = [p for p in self.procs if p.is_alive() and p.pid is not None]
        for proc in alive:
            try:
                os.kill(proc.pid, SHIP_AND_EXIT)   # type: ignore[arg-type]
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + SHIP_GRACE_S
        while any(p.is_alive() for p in alive) and time.monotonic() < deadline:
            self._pump(0.05)
        self._pump(0)
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()

    def totals(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sent": 0, "not_sent": 0, "late": 0, "lagged": 0, "skipped": 0,
                               "intended": 0, "cpu_s": 0.0, "saturated_s": 0, "sampled_s": 0}
        by: dict[str, int] = {}
        for totals in self.done:
            for key in out:
                out[key] += totals.get(key, 0)
            for cause, n in totals.get("saturated_by", {}).items():
                by[cause] = by.get(cause, 0) + n
        # a load process killed before its DONE (the memory watchdog): what it last said
        # it had sent, so the count still reconciles with the target's as far as it can
        out["sent"] += sum(n for i, n in self.sent_by.items() if i not in self.done_by)
        out["saturated_by"] = by
        # the per-second signals of each load process (client.csv): [process, second, ...]
        out["seconds"] = [[i, *row] for i, t in enumerate(self.done)
                          for row in t.get("seconds", [])]
        if self.done and "protocol" in self.done[0]:
            out["protocol"] = self.done[0]["protocol"]
        h2 = [t["h2"] for t in self.done if "h2" in t]
        if h2:
            out["h2"] = {k: sum(c.get(k, 0) for c in h2) for k in h2[0]}
        if any("tls" in t for t in self.done):   # not from Locust: it hides handshakes
            from harness.transports.tls import merge_tls
            out["tls"] = merge_tls([t["tls"] for t in self.done if "tls" in t])
        return out

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]
