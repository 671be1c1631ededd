"""The two user loops every model shares: a blocking one (sync, thread) and an async one
(asyncio, uvloop, both engines). Each asks the Pacer when to send, picks a request,
calls the model's `send`, and records the answer; the model supplies only `send`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from harness.clients.failures import ABORTED, STATUS, RequestFailed
from harness.clients.flows import Answer, Flow, FlowUser, Iteration, Outgoing, StepFailed
from harness.clients.pacing import LATE_NS, Pacer, Picker, sleep_until
from harness.control.job import Job
from harness.stats import Recorder


def cpu_work(n: int) -> int:
    """The lesson's CPU-bound exercise, done per request when a model sets cpu_work."""
    return sum(i * i for i in range(n))


@dataclass
class Journeys:
    """What a user needs to run flows: the compiled flows, its own FlowUser, and the
    model's way to send a rendered step (blocking or awaitable)."""

    flows: list[Flow]
    user: FlowUser
    exchange: Callable[[Outgoing], Any]


def run_flow(it: Iteration, rec: Recorder, sent: list[int], user: int, t_start: int,
             exchange: Callable[[Outgoing], Answer]) -> None:
    """One flow iteration in a blocking model: each step timed (the first from the
    iteration's start, its intended start in the open model), then the flow's own row."""
    perf_ns = time.perf_counter_ns
    t_step = last = t_start
    while True:
        try:
            out = it.next_request()
        except StepFailed as exc:
            last = perf_ns()
            rec.fail(it.step.k, last, last - t_step, exc.kind)  # type: ignore[union-attr]
            it.fail()
            break
        if out is None:
            break
        sent[user] += 1
        try:
            answer = exchange(out)
            last = perf_ns()
            _record_step(rec, it, out.k, t_step, last, answer)
        except RequestFailed as exc:
            last = perf_ns()
            rec.fail(out.k, last, last - t_step, exc.kind)
            it.fail()
        think = it.step.think_s  # type: ignore[union-attr]
        if think and not it.aborted and not it.done:
            time.sleep(think)
        t_step = perf_ns()
    _record_flow(rec, it, t_start, last)


async def run_flow_async(it: Iteration, rec: Recorder, sent: list[int], user: int,
                         t_start: int, exchange: Callable[[Outgoing], Awaitable[Answer]]
                         ) -> None:
    """run_flow for the asyncio-based models: the same steps, awaited."""
    perf_ns = time.perf_counter_ns
    t_step = last = t_start
    while True:
        try:
            out = it.next_request()
        except StepFailed as exc:
            last = perf_ns()
            rec.fail(it.step.k, last, last - t_step, exc.kind)  # type: ignore[union-attr]
            it.fail()
            break
        if out is None:
            break
        sent[user] += 1
        try:
            answer = await exchange(out)
            last = perf_ns()
            _record_step(rec, it, out.k, t_step, last, answer)
        except RequestFailed as exc:
            last = perf_ns()
            rec.fail(out.k, last, last - t_step, exc.kind)
            it.fail()
        think = it.step.think_s  # type: ignore[union-attr]
        if think and not it.aborted and not it.done:
            await asyncio.sleep(think)
        t_step = perf_ns()
    _record_flow(rec, it, t_start, last)


def _record_step(rec: Recorder, it: Iteration, k: int, t0: int, done: int,
                 answer: Answer) -> None:
    failed = it.answer(answer)
    if failed is None:
        rec.ok(k, done, done - t0, answer.size, answer.status)
    else:
        rec.fail(k, done, done - t0, failed[0], answer.status)


def _record_flow(rec: Recorder, it: Iteration, t_start: int, last: int) -> None:
    """The flow's row: the whole iteration's latency; an aborted one is a failure."""
    if it.done:
        rec.ok(it.flow.k, last, last - t_start, 0, 0)
    else:
        rec.fail(it.flow.k, last, last - t_start, ABORTED)


def blocking_user(user: int, job: Job, pacer: Pacer, rec: Recorder,
                  send: Callable[[int], tuple[int, int]], close: Callable[[], None],
                  journeys: Journeys | None = None) -> None:
    """One user of a thread-based model: closed or open loop around `send(spec index)`,
    or a whole flow iteration when the pick is a flow."""
    picker = Picker(job.weights, job.seed * 31 + user)
    n_requests = len(job.requests)
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
            if k >= n_requests:
                assert journeys is not None
                run_flow(journeys.user.start(journeys.flows[k - n_requests]), rec, rec.sent,
                         user, t_start, journeys.exchange)
                if job.think_time_s and not open_model:
                    time.sleep(job.think_time_s)
                continue
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
                     send: Callable[[int], Awaitable[tuple[int, int]]],
                     journeys: Journeys | None = None) -> None:
    """One user (coroutine) of an asyncio-based model: the same loop, awaiting `send`
    (a coroutine, or for the fast engine's hot path a bare future: no frame per request).

    Written for the hot path: flags hoisted out of the loop, one clock read per request.
    """
    picker = Picker(job.weights, job.seed * 31 + user)
    pick, single = picker.pick, picker.single
    n_requests = len(job.requests)
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
        if k >= n_requests:   # a flow: its steps, then its own row
            assert journeys is not None
            await run_flow_async(journeys.user.start(journeys.flows[k - n_requests]), rec,
                                 sent, user, t_start, journeys.exchange)
            if think and not open_model:
                await asyncio.sleep(think)
            continue
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
