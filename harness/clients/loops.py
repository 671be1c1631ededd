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

from harness.clients.flows import Flow, FlowUser, Iteration
from harness.clients.pacing import LAGGED_NS, LATE_NS, Pacer, Picker, sleep_until
from harness.core.extraction import Answer
from harness.core.failures import ABORTED, STATUS, RequestFailed
from harness.core.job import Job
from harness.core.steps import AS_BYTES, AS_REQUEST
from harness.core.templates import StepFailed
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
    exchange: Callable[[Any, Any], Any]   # (the step as `takes` says, the step) -> Answer
    takes: str = AS_REQUEST          # AS_REQUEST (an Outgoing) or AS_BYTES (core.steps)


class FlowRun:
    """The one driver of a flow iteration's bookkeeping, in every model: each step timed
    (the first from the iteration's start: its intended start in the open model),
    recorded under its name, counted as sent; then the flow's own row. The blocking,
    async and Locust loops are thin loops over it: next step, send it, answered or failed,
    think, restart the clock; finish."""

    __slots__ = ("it", "rec", "sent", "user", "t_start", "t_step", "t_step_next", "last",
                 "k", "render")

    def __init__(self, it: Iteration, rec: Recorder, sent: list[int], user: int,
                 t_start: int, takes: str = AS_REQUEST) -> None:
        self.it, self.rec, self.sent, self.user = it, rec, sent, user
        self.t_start = self.t_step = self.t_step_next = self.last = t_start
        self.k = -1
        self.render = it.next_wire if takes == AS_BYTES else it.next_request

    def next(self) -> Any:
        """The next rendered step to send (as the transport takes it), or None: the
        iteration is over."""
        it = self.it
        try:
            out = self.render()
        except StepFailed as exc:   # a value that cannot go where it goes
            self.last = time.perf_counter_ns()
            self.rec.fail(it.step.k, self.last, self.last - self.t_step,  # type: ignore
                          exc.kind)
            it.fail()
            return None
        if out is not None:
            self.sent[self.user] += 1
            self.k = it.step.k   # type: ignore[union-attr]
        return out

    def answered(self, answer: Answer) -> float:
        """Record the step's answer; the think time to wait before the next step. The
        next step's clock starts here (restart_clock after a think time)."""
        self.last = self.t_step_next = done = time.perf_counter_ns()
        failed = self.it.answer(answer)
        if failed is None:
            self.rec.ok(self.k, done, done - self.t_step, answer.size, answer.status)
        else:
            self.rec.fail(self.k, done, done - self.t_step, failed[0], answer.status)
        it = self.it
        return it.step.think_s if not it.aborted and not it.done else 0.0  # type: ignore

    def failed(self, kind: str) -> float:
        """The step got no answer (reset, timeout...): the iteration ends."""
        self.last = self.t_step_next = done = time.perf_counter_ns()
        self.rec.fail(self.k, done, done - self.t_step, kind)
        self.it.fail()
        return 0.0

    def restart_clock(self, waited: bool = True) -> None:
        """The next step's clock: now after a think time, else when the last answered."""
        self.t_step = time.perf_counter_ns() if waited else self.t_step_next

    def finish(self) -> None:
        """The flow's row: the whole iteration's latency; an aborted one is a failure."""
        it, last = self.it, self.last
        if it.done:
            self.rec.ok(it.flow.k, last, last - self.t_start, 0, 0)
        else:
            self.rec.fail(it.flow.k, last, last - self.t_start, ABORTED)


def run_flow(run: FlowRun, exchange: Callable[[Any, Any], Answer],
             sleep: Callable[[float], Any] = time.sleep) -> None:
    """One flow iteration in a blocking model (and Locust's, with gevent's sleep)."""
    it = run.it
    while (out := run.next()) is not None:
        try:
            think = run.answered(exchange(out, it.step))
        except RequestFailed as exc:
            think = run.failed(exc.kind)
        if think:
            sleep(think)
        run.restart_clock(bool(think))
    run.finish()


async def run_flow_async(run: FlowRun, exchange: Callable[[Any, Any], Awaitable[Answer]]
                         ) -> None:
    """One flow iteration in an asyncio-based model: run_flow's loop, awaiting."""
    it = run.it
    while (out := run.next()) is not None:
        try:
            think = run.answered(await exchange(out, it.step))
        except RequestFailed as exc:
            think = run.failed(exc.kind)
        if think:
            await asyncio.sleep(think)
        run.restart_clock(bool(think))
    run.finish()


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
    t_measure_ns = int(pacer.t_measure * 1e9)
    sleep_until(pacer.t0)  # every worker starts at the coordinator's START offset
    try:
        while True:
            if open_model:
                intended = pacer.next_intended()
                if intended is None:
                    break
                waited = intended > perf()   # free and waiting, not busy past it
                sleep_until(intended)
                t_start = int(intended * 1e9)
                # late sends of the measured window (warm-up opens the connections)
                if (lag := perf_ns() - t_start) > LATE_NS and t_start >= t_measure_ns:
                    rec.late[user] += 1
                    if lag > LAGGED_NS and waited:
                        rec.lagged[user] += 1
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
                run_flow(FlowRun(journeys.user.start(journeys.flows[k - n_requests]), rec,
                                 rec.sent, user, t_start, journeys.takes), journeys.exchange)
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
    t_measure_ns = int(pacer.t_measure * 1e9)
    sent = rec.sent
    record_fail = rec.fail
    record_ok = rec.ok
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
            # late sends of the measured window (warm-up opens the connections)
            if (lag := perf_ns() - t_start) > LATE_NS and t_start >= t_measure_ns:
                rec.late[user] += 1
                if lag > LAGGED_NS and delay > 0:
                    rec.lagged[user] += 1
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
            await run_flow_async(FlowRun(journeys.user.start(journeys.flows[k - n_requests]),
                                         rec, sent, user, t_start, journeys.takes),
                                 journeys.exchange)
            if think and not open_model:
                await asyncio.sleep(think)
            continue
        sent[user] += 1
        try:
            status, nbytes = await send(k)
            done = perf_ns()
            if status in accepted[k]:
                record_ok(k, done, done - t_start, nbytes, status)
            else:
                record_fail(k, done, done - t_start, STATUS, status)
        except RequestFailed as exc:
            done = perf_ns()
            record_fail(k, done, done - t_start, exc.kind)
        if cpu:
            cpu_work(cpu)
        if think and not open_model:
            await asyncio.sleep(think)
