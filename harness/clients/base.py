"""The one interface every concurrency model implements, and the loops they share.

A model is started with a Job and the run's start time, runs in the background (threads,
an event loop in a thread, or processes), and is drained for finished intervals while it
runs. Closed and open load, stages, warm-up and bounds come from the Pacer, so each model
only supplies how one request is sent.
"""

from __future__ import annotations

import asyncio
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

from harness.plan import LATE_NS, Job, Pacer, Picker, sleep_until
from harness.scenario import RequestSpec
from harness.stats import IntervalStats, Recorder

# Error kinds, as they appear in errors.csv.
CONNECT_REFUSED = "connect_refused"
TIMEOUT = "timeout"
RESET = "reset"
STATUS = "unexpected_status"
MALFORMED = "malformed_response"
BODY_LENGTH = "body_length_mismatch"
OTHER = "other"


class RequestFailed(Exception):
    """A request that did not succeed, with its kind; `keep` is True when the connection
    is still usable (an unexpected status), False when it must be reopened."""

    def __init__(self, kind: str, detail: str = "", keep: bool = False) -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind, self.keep = kind, keep


def status_ok(spec: RequestSpec, status: int) -> bool:
    return status in spec.expect_status if spec.expect_status else 200 <= status < 400


def cpu_work(n: int) -> int:
    """The lesson's CPU-bound exercise, done per request when a model sets cpu_work."""
    return sum(i * i for i in range(n))


def request_bytes(spec: RequestSpec, host: str, port: int, base_path: str) -> bytes:
    """The wire form of a request, built once per spec (the fast engine sends it as is)."""
    lines = [f"{spec.method} {base_path}{spec.path} HTTP/1.1", f"Host: {host}:{port}"]
    names = {k.lower() for k, _ in spec.headers}
    lines += [f"{k}: {v}" for k, v in spec.headers]
    if spec.body or spec.method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(spec.body)}")
    if "user-agent" not in names:
        lines.append("User-Agent: loadharness")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + spec.body


class ClientModel(ABC):
    """Start, drain while running, wait, stop. What the worker drives for every model."""

    @abstractmethod
    def start(self, job: Job, t0: float) -> None: ...

    @abstractmethod
    def drain(self) -> dict[tuple[int, str], IntervalStats]:
        """Everything measured since the last drain (intervals may come out partial)."""

    @abstractmethod
    def wait(self, timeout: float) -> bool:
        """True once every user has finished."""

    @abstractmethod
    def stop(self) -> None: ...

    @abstractmethod
    def totals(self) -> dict[str, int]:
        """requests sent (warm-up included), late and skipped sends."""

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
        self.recorder = Recorder([r["name"] for r in job.requests],
                                 int(self.pacer.t_measure * 1e9), users=job.concurrency)

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

    def drain(self) -> dict[tuple[int, str], IntervalStats]:
        assert self.recorder is not None
        return self.recorder.drain()

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self.threads)

    def stop(self) -> None:
        if self.pacer is not None:
            self.pacer.stopped = True

    def totals(self) -> dict[str, int]:
        rec, pacer = self.recorder, self.pacer
        assert rec is not None and pacer is not None
        return {"sent": sum(rec.sent), "late": sum(rec.late),
                "skipped": rec.skipped + pacer.skipped(time.perf_counter())}


def blocking_user(user: int, job: Job, pacer: Pacer, rec: Recorder,
                  send: Callable[[int], tuple[int, int]], close: Callable[[], None]) -> None:
    """One user of a thread-based model: closed or open loop around `send(spec index)`."""
    picker = Picker(job.specs, job.seed * 31 + user)
    specs = job.specs
    perf, perf_ns = time.perf_counter, time.perf_counter_ns
    open_model = job.mode == "open"
    sleep_until(pacer.t0)  # every worker starts at the coordinator's START offset
    try:
        while True:
            if open_model:
                intended = pacer.next_intended()
                if intended is None:
                    break
                sleep_until(intended)
                t_start = int(intended * 1e9)
                if perf_ns() - t_start > LATE_NS:
                    rec.late[user] += 1
            else:
                now = perf()
                if not pacer.running(now):
                    break
                if not pacer.active(user, now):
                    time.sleep(0.01)
                    continue
                t_start = perf_ns()
            if not pacer.claim(t_start / 1e9):
                break
            k = picker.pick()
            rec.sent[user] += 1
            try:
                status, nbytes = send(k)
                done = perf_ns()
                if status_ok(specs[k], status):
                    rec.ok(k, done, done - t_start, nbytes)
                else:
                    rec.fail(k, done, done - t_start, STATUS)
            except RequestFailed as exc:
                done = perf_ns()
                rec.fail(k, done, done - t_start, exc.kind)
            if job.cpu_work:
                cpu_work(job.cpu_work)
            if job.think_time_s and not open_model:
                time.sleep(job.think_time_s)
    finally:
        close()


async def async_user(user: int, job: Job, pacer: Pacer, rec: Recorder,
                     send: Callable[[int], Awaitable[tuple[int, int]]]) -> None:
    """One user (coroutine) of an asyncio-based model: the same loop, awaiting `send`
    (a coroutine, or for the fast engine's hot path a bare future: no frame per request).

    Written for the hot path: flags hoisted out of the loop, one clock read per request.
    """
    picker = Picker(job.specs, job.seed * 31 + user)
    pick, single = picker.pick, picker.single
    specs = job.specs
    ok_status = [set(s.expect_status) or None for s in specs]
    perf, perf_ns = time.perf_counter, time.perf_counter_ns
    open_model = job.mode == "open"
    staged = bool(job.stages)
    bounded = job.total_requests is not None
    t_end_ns = int(pacer.t_end * 1e9)
    sent = rec.sent
    record_fail = rec.fail
    append_sample = rec.samples.append  # Recorder.ok inlined: one call less per request
    cpu, think = job.cpu_work, job.think_time_s
    # uvloop's timers have millisecond resolution and may fire before t0 by perf_counter:
    # a user starting early would send its first request as warm-up, uncounted by a
    # request-bounded run's total, so wait until t0 has truly passed
    while (delay := pacer.t0 - perf()) > 0:
        await asyncio.sleep(delay)
    while True:
        if open_model:
            intended = pacer.next_intended()
            if intended is None:
                break
            delay = intended - perf()
            if delay > 0:
                await asyncio.sleep(delay)
            t_start = int(intended * 1e9)
            if perf_ns() - t_start > LATE_NS:
                rec.late[user] += 1
        else:
            t_start = perf_ns()
            if t_start >= t_end_ns or pacer.stopped:
                break
            if staged and not pacer.active(user, t_start / 1e9):
                await asyncio.sleep(0.01)
                continue
        if bounded and not pacer.claim(t_start / 1e9):
            break
        k = 0 if single else pick()
        sent[user] += 1
        try:
            status, nbytes = await send(k)
            done = perf_ns()
            expected = ok_status[k]
            if (200 <= status < 400) if expected is None else status in expected:
                append_sample((done, k, (done - t_start) // 1000, nbytes))
            else:
                record_fail(k, done, done - t_start, STATUS)
        except RequestFailed as exc:
            done = perf_ns()
            record_fail(k, done, done - t_start, exc.kind)
        if cpu:
            cpu_work(cpu)
        if think and not open_model:
            await asyncio.sleep(think)
