"""Callback-driven users for a transport that can `post` (the fast engine): the answer's
own read records the sample and sends the user's next request -- no coroutine resumed,
no future and no task per request. A coroutine runs only where one is needed: to open a
connection (and its TLS handshake) and to run a flow iteration.

Closed model: each user chains its requests itself (think time is one `call_later`).
Open model: one timer source for every user (`OpenSchedule`): the schedule's next
intended send is armed once, and fired into a free user; a user that comes free takes a
send already due at once (late: every user was busy), otherwise waits to be fired.
Latency is timed from the intended send, as in every model (clients/loops.py).
"""

from __future__ import annotations

import asyncio
import time

from harness.clients.flows import Flow, FlowUser
from harness.clients.loops import FlowRun, Journeys, cpu_work, run_flow_async
from harness.clients.pacing import LAGGED_NS, LATE_NS, Pacer, Picker
from harness.core.failures import STATUS, RequestFailed
from harness.core.job import Job
from harness.stats import Recorder
from harness.transports.base import Link


class ChainedUser:
    """One user as callbacks: `go` sends (closed model: when its last answer is in; open
    model: when the schedule fires it), `answered`/`failed` record and go on."""

    __slots__ = ("user", "job", "pacer", "rec", "link", "journeys", "loop", "done", "k",
                 "t_start", "pick", "schedule", "_post", "_ok", "_fail", "_accepted",
                 "_n_requests", "_t_end_ns", "_staged", "_bounded", "_think", "_cpu",
                 "_sent")

    def __init__(self, user: int, job: Job, pacer: Pacer, rec: Recorder, link: Link,
                 journeys: Journeys | None, schedule: OpenSchedule | None = None) -> None:
        assert link.post is not None
        self.user, self.job, self.pacer, self.rec = user, job, pacer, rec
        self.link, self.journeys, self.schedule = link, journeys, schedule
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.k = 0
        self.t_start = 0
        picker = Picker(job.weights, job.seed * 31 + user)
        self.pick = (lambda: 0) if picker.single else picker.pick
        self._post = link.post
        self._ok, self._fail, self._sent = rec.ok, rec.fail, rec.sent
        self._accepted = [s.accepted_statuses for s in job.specs]
        self._n_requests = len(job.requests)
        self._t_end_ns = int(pacer.t_end * 1e9)
        self._staged = bool(job.stages)
        self._bounded = job.total_requests is not None
        self._think = job.think_time_s if job.mode == "closed" else 0.0
        self._cpu = job.cpu_work

    # -- sending ----------------------------------------------------------------------------

    def go(self) -> None:
        """Closed model: the user's next request now, or its end."""
        t_start = time.perf_counter_ns()
        pacer = self.pacer
        if t_start >= self._t_end_ns or pacer.stopped:
            self.end()
        elif self._staged and not pacer.active(self.user, t_start / 1e9):
            self.loop.call_later(0.01, self.go)
        else:
            self.send(t_start)

    def fire(self, intended: float, waited: bool) -> None:
        """Open model: the schedule's send meant for `intended`, given to this free user
        (`waited`: it was free before the send was due -- lateness then is the loop's)."""
        t_start = int(intended * 1e9)
        lag = time.perf_counter_ns() - t_start
        if lag > LATE_NS and intended >= self.pacer.t_measure:
            self.rec.late[self.user] += 1
            if lag > LAGGED_NS and waited:
                self.rec.lagged[self.user] += 1
        self.send(t_start)

    def send(self, t_start: int) -> None:
        try:
            if self._bounded and not self.pacer.claim(t_start / 1e9):
                self.end()
                return
            k = self.pick()
            if k >= self._n_requests:   # a flow: its steps in a coroutine, then on
                asyncio.ensure_future(self._flow(k, t_start))
                return
            self._sent[self.user] += 1
            self.k, self.t_start = k, t_start
            if not self._post(k, self):
                asyncio.ensure_future(self._connect(k))   # (re)connect: a coroutine
        except BaseException as exc:   # a defect, never a request's failure: end loudly
            self.end(exc)

    async def _connect(self, k: int) -> None:
        try:
            status, nbytes = await self.link.send(k)
        except RequestFailed as exc:
            self.failed(exc)
        else:
            self.answered(status, nbytes)

    async def _flow(self, k: int, t_start: int) -> None:
        journeys = self.journeys
        assert journeys is not None
        flow: Flow = journeys.flows[k - self._n_requests]
        user: FlowUser = journeys.user
        try:
            await run_flow_async(FlowRun(user.start(flow), self.rec, self._sent, self.user,
                                         t_start, journeys.takes), journeys.exchange)
        except BaseException as exc:
            self.end(exc)
            return
        self.next()

    # -- answers (called by the transport, from the read that completed the answer) --------

    def answered(self, status: int, nbytes: int) -> None:
        done = time.perf_counter_ns()
        k = self.k
        try:
            if status in self._accepted[k]:
                self._ok(k, done, done - self.t_start, nbytes, status)
            else:
                self._fail(k, done, done - self.t_start, STATUS, status)
            self.next()
        except BaseException as exc:
            self.end(exc)

    def failed(self, exc: Exception) -> None:
        done = time.perf_counter_ns()
        try:
            kind = exc.kind if isinstance(exc, RequestFailed) else type(exc).__name__
            self._fail(self.k, done, done - self.t_start, kind)
            self.next()
        except BaseException as error:
            self.end(error)

    def next(self) -> None:
        """After an answer: the model's CPU work, the think time, then the next send."""
        if self._cpu:
            cpu_work(self._cpu)
        if self.schedule is not None:
            self.schedule.free(self)
        elif self._think:
            self.loop.call_later(self._think, self.go)
        else:
            self.go()

    def end(self, exc: BaseException | None = None) -> None:
        if not self.done.done():
            if exc is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(exc)


class OpenSchedule:
    """The open model's one timer source: the next intended send armed once (`call_at`),
    fired into a free user; when no user is free the schedule waits, and the first user
    to come free takes what is due. Replaces a timer per user per request."""

    def __init__(self, pacer: Pacer) -> None:
        self.pacer = pacer
        self.loop = asyncio.get_running_loop()
        self.idle: list[ChainedUser] = []
        self.pending: float | None = None    # the next intended send, taken, not yet sent
        self.armed: asyncio.TimerHandle | None = None
        self.ended = False

    def start(self, users: list[ChainedUser]) -> None:
        self.idle.extend(reversed(users))
        self._dispatch(True)

    def free(self, user: ChainedUser) -> None:
        """A user's answer is in: it takes a due send, or waits for the next."""
        if self.ended:
            user.end()
            return
        waiting = bool(self.idle)   # others were free: a due send was the loop's delay
        self.idle.append(user)
        self._dispatch(waiting)

    def _fire(self) -> None:
        self.armed = None
        self._dispatch(True)

    def _dispatch(self, waited: bool) -> None:
        idle, pacer = self.idle, self.pacer
        try:
            while idle:
                t = self.pending
                if t is None:
                    t = self.pending = pacer.next_intended()
                    if t is None:
                        self._end()
                        return
                delay = t - time.perf_counter()
                if delay > 0:
                    if self.armed is None:
                        self.armed = self.loop.call_at(self.loop.time() + delay, self._fire)
                    return
                self.pending = None
                idle.pop().fire(t, waited)
        except BaseException as exc:
            for user in idle:
                user.end(exc)
            raise

    def _end(self) -> None:
        self.ended = True
        while self.idle:
            self.idle.pop().end()


async def run_chained(job: Job, pacer: Pacer, rec: Recorder, links: list[Link],
                      journeys: list[Journeys | None]) -> None:
    """Every user of a process as callbacks over links that can `post`, from t0 to the
    end (closed: each chains itself; open: one schedule fires them)."""
    schedule = OpenSchedule(pacer) if job.mode == "open" else None
    users = [ChainedUser(i, job, pacer, rec, link, journeys[i], schedule)
             for i, link in enumerate(links)]
    # uvloop's timers fire up to a millisecond early by perf_counter: wait until t0 has
    # truly passed (a first request as warm-up would escape a bounded run's total)
    while (delay := pacer.t0 - time.perf_counter()) > 0:
        await asyncio.sleep(delay)
    if schedule is not None:
        schedule.start(users)
    else:
        for user in users:
            user.go()
    await asyncio.gather(*(user.done for user in users))

