"""The two user loops every model shares: a blocking one (sync, thread) and an async one
(asyncio, uvloop, both engines). Each asks the Pacer when to send, picks a request,
calls the model's `send`, and records the answer; the model supplies only `send`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from harness.clients.failures import STATUS, RequestFailed
from harness.clients.pacing import LATE_NS, Pacer, Picker, sleep_until
from harness.control.job import Job
from harness.stats import Recorder


def cpu_work(n: int) -> int:
    """The lesson's CPU-bound exercise, done per request when a model sets cpu_work."""
    return sum(i * i for i in range(n))


def blocking_user(user: int, job: Job, pacer: Pacer, rec: Recorder,
                  send: Callable[[int], tuple[int, int]], close: Callable[[], None]) -> None:
    """One user of a thread-based model: closed or open loop around `send(spec index)`."""
    picker = Picker(job.specs, job.seed * 31 + user)
    accepted = [s.accepted_statuses for s in job.specs]
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
                if status in accepted[k]:
                    rec.ok(k, done, done - t_start, nbytes, status)
                else:
                    rec.fail(k, done, done - t_start, STATUS, status)
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
    accepted = [s.accepted_statuses for s in job.specs]
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
            if status in accepted[k]:
                append_sample((done, k, (done - t_start) // 1000, nbytes, status))
            else:
                record_fail(k, done, done - t_start, STATUS, status)
        except RequestFailed as exc:
            done = perf_ns()
            record_fail(k, done, done - t_start, exc.kind)
        if cpu:
            cpu_work(cpu)
        if think and not open_model:
            await asyncio.sleep(think)
