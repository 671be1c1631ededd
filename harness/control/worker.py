"""The worker: a DEALER socket that takes its slice of each model, runs it, streams STATS.

It never sends load without a coordinator: if no message (heartbeats included) arrives
for PATIENCE_FACTOR x the coordinator's lost_after (a partition it may come back from), or
at once when the coordinator's connection closes (it was killed), it stops the model and
exits non-zero.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import zmq
from zmq.utils.monitor import recv_monitor_message

from harness.clients.base import ClientModel
from harness.clients.process import ProcessModel
from harness.control import messages
from harness.control.datasend import DataReceiver
from harness.control.journal import Journal
from harness.control.messages import HEARTBEAT_S, LOST_AFTER_S, PATIENCE_FACTOR, Malformed
from harness.control.runstate import WORKER_RECORDS, record
from harness.core.datatable import MAX_DATA_BYTES
from harness.core.job import Job, JobError
from harness.core.registry import MODELS
from harness.errors import CoordinatorLost, WorkerError
from harness.scenario.spec import default_max_memory
from harness.stats import collect_cycles
from mockserver.fdlimit import raise_nofile

CONNECT_TIMEOUT_S = 30.0
STOP_GRACE_S = 3.0      # over the memory ceiling: how long a model may take to stop
WRAPUP_WAIT_S = 600.0   # after the load: how long to wait for the coordinator's BYE


class Worker:
    def __init__(self, endpoint: str, name: str | None = None,
                 curve: dict[str, bytes] | None = None,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S,
                 journal_path: Path | None = None) -> None:
        self.endpoint = endpoint
        # its own journal of every STATS and DONE it sends (or meant to): what a partition
        # kept from the coordinator is merged later by `harness report RUN --add FILE`
        self.journal_path = journal_path
        self.journal: Journal | None = None
        self.index = -1
        self.seq = 0
        self.data = DataReceiver(MAX_DATA_BYTES)   # [[data]] tables, from DATA chunks
        self.connect_timeout_s = connect_timeout_s
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 2000)
        if curve:
            self.sock.curve_secretkey = curve["secret"]
            self.sock.curve_publickey = curve["public"]
            self.sock.curve_serverkey = curve["server"]
        # connection events: a closed connection is a coordinator that died, not a cut
        self.monitor = self.sock.get_monitor_socket(zmq.EVENT_CONNECTED |
                                                    zmq.EVENT_DISCONNECTED)
        self.connected = False
        self.closed_at: float | None = None
        self.sock.connect(endpoint)
        self.patience = PATIENCE_FACTOR * LOST_AFTER_S
        self.last_heard = time.monotonic()
        self.last_sent = 0.0
        self.dropped = 0
        self.proc = psutil.Process()

    def send(self, kind: str, **fields: Any) -> None:
        """Never blocks: a DEALER with no live peer (refused handshake, coordinator gone)
        would block a plain send forever; heartbeats decide what a silence means."""
        try:
            self.sock.send(messages.encode(kind, **fields), flags=zmq.NOBLOCK)
        except zmq.Again:
            return
        self.last_sent = time.monotonic()

    def recv(self, timeout_s: float) -> dict[str, Any] | None:
        """One valid message or None; heartbeats refresh liveness, bad frames are counted."""
        if self.sock.poll(int(timeout_s * 1000)) == 0:
            return None
        frame = self.sock.recv()
        self.last_heard = time.monotonic()
        try:
            return messages.decode(frame)
        except Malformed as exc:
            self.dropped += 1
            print(f"worker {self.name}: dropped a bad message: {exc}", file=sys.stderr)
            return None

    def tick(self) -> None:
        now = time.monotonic()
        if now - self.last_sent >= HEARTBEAT_S:
            self.send("HEARTBEAT")
        self._connection_events()
        if self.closed_at is not None and now - self.closed_at > 2 * HEARTBEAT_S:
            raise CoordinatorLost("no word from the coordinator: its connection closed")
        if now - self.last_heard > self.patience:
            raise CoordinatorLost(f"no word from the coordinator for {now - self.last_heard:.1f}s")

    def _connection_events(self) -> None:
        while self.monitor.poll(0):
            try:
                event = recv_monitor_message(self.monitor)["event"]
            except zmq.ZMQError:
                return
            if event == zmq.EVENT_CONNECTED:
                self.connected, self.closed_at = True, None
            elif event == zmq.EVENT_DISCONNECTED and self.connected:
                self.closed_at = time.monotonic()

    def hello(self) -> int | None:
        """Say HELLO until WELCOME (the coordinator may start after us), bounded; None when
        the coordinator has all its workers and keeps this one as a spare."""
        deadline = time.monotonic() + self.connect_timeout_s
        while time.monotonic() < deadline:
            self.send("HELLO", name=self.name, pid=os.getpid(), host=socket.gethostname())
            until = time.monotonic() + 1.0
            while time.monotonic() < until:
                msg = self.recv(0.2)
                if msg is None:
                    continue
                if msg["t"] in ("WELCOME", "SPARE"):
                    self.last_heard = time.monotonic()
                    if msg["t"] == "WELCOME":
                        self.patience = PATIENCE_FACTOR * float(msg["lost_after"])
                        self.index = int(msg["index"])
                        self._open_journal(str(msg["run"]))
                    return msg["index"] if msg["t"] == "WELCOME" else None
                if msg["t"] == "REFUSE":
                    raise WorkerError(f"refused by the coordinator: {msg['reason']}")
        raise WorkerError(f"no coordinator answered at {self.endpoint} within "
                          f"{self.connect_timeout_s:.0f}s (or it refused this worker's key)")

    def _with_data(self, job: Job) -> Job:
        """The Job with each [[data]] table's bytes, received before it (DATA)."""
        data = []
        for entry in job.data:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) \
                    or not isinstance(entry.get("size"), int):
                raise JobError("data: expected tables with a name and a size")
            blob = self.data.blob(entry["name"], entry["size"])
            if blob is None:
                raise JobError(f"data: table {entry['name'][:40]!r} did not arrive whole")
            data.append({**entry, "blob": blob})
        return dataclasses.replace(job, data=data)

    def _open_journal(self, run: str) -> None:
        if self.journal_path is None or self.journal is not None:
            return
        try:
            self.journal = Journal(path=self.journal_path)
        except OSError as exc:
            raise WorkerError(f"--journal {self.journal_path}: cannot write: "
                              f"{exc.strerror or exc}") from None
        self._note("join", run=run, worker=self.index, name=self.name)

    def _note(self, kind: str, **fields: Any) -> None:
        """A record of this worker's journal (runstate.WORKER_RECORDS declares them)."""
        if self.journal is not None:
            self.journal.append_record(record(kind, WORKER_RECORDS, **fields))

    def serve(self) -> int:
        raise_nofile()
        if self.hello() is None:
            print(f"worker {self.name}: the run has all its workers; waiting as a spare",
                  file=sys.stderr)
        jobs: dict[int, tuple[Job, ClientModel]] = {}
        preparing: set[int] = set()
        while True:
            msg = self.recv(0.05 if preparing else HEARTBEAT_S / 2)
            self.tick()
            for index in [i for i in preparing if jobs[i][1].ready()]:
                preparing.discard(index)
                self.send("READY", model=index)  # only once its processes have started
            if msg is None:
                continue
            kind = msg["t"]
            if kind == "DATA":
                got = self.data.take(msg["table"], msg["offset"], msg["total"], msg["chunk"])
                if got is None:
                    self.dropped += 1
                else:
                    self.send("HAVE", table=msg["table"], got=got)
                continue
            if kind == "PREPARE":
                try:
                    job = self._with_data(Job.from_wire(msg["job"]))
                    if job.model not in MODELS or (job.sub_model and
                                                   job.sub_model not in MODELS):
                        raise JobError(f"model: expected one of {', '.join(MODELS)}, got "
                                       f"{job.model[:40]!r}")
                except (JobError, TypeError) as exc:
                    self.dropped += 1
                    print(f"worker: refused a job from the coordinator: {exc}",
                          file=sys.stderr, flush=True)
                    continue
                jobs[msg["model"]] = (job, ProcessModel(job))  # spawns its load processes
                preparing.add(msg["model"])
            elif kind == "START" and msg["model"] in jobs:
                job, model = jobs.pop(msg["model"])
                self.run_model(msg["model"], job, model, float(msg["start_in"]))
            elif kind in ("ABORT", "WRAPUP", "BYE"):
                for _, model in jobs.values():
                    model.kill()  # prepared, never started
                jobs.clear()
                preparing.clear()
                if kind == "WRAPUP":
                    return self.wait_for_bye()
                if kind == "BYE":
                    return 0

    def wait_for_bye(self) -> int:
        """The load is over and the coordinator is writing its results (it does not answer
        heartbeats meanwhile): stay until its BYE, so that a compose stack, which stops
        when its first container exits, never stops the coordinator mid-write. Bounded."""
        deadline = time.monotonic() + WRAPUP_WAIT_S
        while time.monotonic() < deadline:
            msg = self.recv(HEARTBEAT_S)
            if msg is not None and msg["t"] == "BYE":
                return 0
        print(f"worker {self.name}: no BYE within {WRAPUP_WAIT_S:.0f}s of the end of the "
              "load; leaving", file=sys.stderr)
        return 0

    def run_model(self, index: int, job: Job, model: ClientModel, start_in: float) -> None:
        t0 = time.perf_counter() + start_in
        t0_wall = time.time() + start_in  # reported so the run can show how aligned starts were
        cpu_before = self._cpu_s()
        model.start(job, t0)
        peak_rss = self._rss(model)
        aborted = False
        ceiling = job.max_memory or default_max_memory()
        over = ""
        try:
            while not model.wait(0.2):
                self._flush(index, model)
                rss = self._rss(model)
                peak_rss = max(peak_rss, rss)
                if rss > ceiling and not over:
                    over = self._over_ceiling(job.label, model, rss, ceiling)
                    peak_rss = max(peak_rss, self._rss(model))
                    break
                msg = self.recv(0)
                while msg is not None:
                    if msg["t"] == "ABORT":
                        model.stop()
                        aborted = True
                    msg = self.recv(0)
                self.tick()
        except CoordinatorLost:
            model.stop()
            if not model.wait(3):
                model.kill()
            # nobody hears these, the journal keeps them: report --add merges them
            self._flush(index, model)
            self._note("done", model=index, worker=self.index,
                       totals={**model.totals(), "rss_peak": peak_rss}, error="")
            raise
        self._flush(index, model)
        totals = model.totals()
        totals.update({
            "cpu_s": round(totals["cpu_s"], 4),
            "control_cpu_s": round(self._cpu_s() - cpu_before, 4),
            "rss_peak": max(peak_rss, self._rss(model)),
            "dropped": self.dropped,
            "aborted": int(aborted),
            "elapsed_s": round(time.perf_counter() - t0, 4),
            "started_wall": t0_wall,
        })
        error = over or model.error
        said = (error if isinstance(error, str) else repr(error)) if error else ""
        self._note("done", model=index, worker=self.index, totals=totals, error=said)
        self.send("DONE", model=index, totals=totals, error=said)

    def _over_ceiling(self, label: str, model: ClientModel, rss: int, ceiling: int) -> str:
        """The memory watchdog: the load processes passed [run].max_memory (a hostile
        target's endless or inflating body in a client that buffers it). Stop them --
        they ship what they measured as they stop -- and kill any that keeps growing or
        does not stop within a few seconds: the machine, the worker and every interval
        already measured are kept."""
        model.stop()
        deadline = time.monotonic() + STOP_GRACE_S
        while not model.wait(0.1):
            if time.monotonic() > deadline or self._rss(model) > 2 * ceiling:
                model.kill()
                model.wait(2)
                break
        mib = 1 << 20
        return (f"{label}: memory ceiling: its load processes held {rss / mib:.0f} MiB, over "
                f"[run].max_memory ({ceiling / mib:.0f} MiB); stopped, what it measured "
                "before is kept")

    def _flush(self, index: int, model: ClientModel) -> None:
        model.beat()  # the load processes stop when their worker stops beating (SIGSTOP)
        collect_cycles()
        cells = model.drain_wires()
        if cells:
            self.seq += 1
            sent = model.sent()
            self._note("stats", model=index, worker=self.index, seq=self.seq, cells=cells,
                       sent=sent)
            self.send("STATS", model=index, cells=cells, sent=sent, seq=self.seq)

    def _cpu_s(self) -> float:
        t = self.proc.cpu_times()
        return t.user + t.system

    def _rss(self, model: ClientModel) -> int:
        """Resident memory of the model's load processes (the control loop is apart)."""
        rss = 0
        for pid in model.pids():
            try:
                rss += psutil.Process(pid).memory_info().rss
            except psutil.Error:
                pass
        return rss

    def close(self) -> None:
        if self.journal is not None:
            self.journal.close()
        self.sock.disable_monitor()
        self.monitor.close(0)
        self.sock.close(linger=1000)


def run_worker(endpoint: str, name: str | None = None, curve: dict[str, bytes] | None = None,
               connect_timeout_s: float = CONNECT_TIMEOUT_S,
               journal_path: Path | None = None) -> int:
    worker = Worker(endpoint, name, curve, connect_timeout_s, journal_path)
    try:
        return worker.serve()
    except CoordinatorLost as exc:
        kept = f" (what it measured is in {journal_path}: harness report RUN_DIR --add " \
               f"{journal_path})" if worker.journal is not None else ""
        print(f"worker {worker.name}: {exc}; stopped sending load{kept}", file=sys.stderr)
        return 1
    except WorkerError as exc:
        print(f"worker {worker.name}: {exc}", file=sys.stderr)
        return 1
    finally:
        worker.close()
