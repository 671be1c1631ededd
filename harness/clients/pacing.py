"""The load shape every client model follows: the Pacer, and the Picker of requests.

The Pacer answers the questions every client loop asks -- may user i run now, may I send
one more, when was this request meant to go out -- so closed/open load, stages, warm-up
and bounds behave the same in every concurrency model.
"""

from __future__ import annotations

import bisect
import random
import threading
import time

from harness.core.job import Job
from harness.core.steps import RequestSpec

LATE_NS = 1_000_000          # a send more than 1 ms after its intended time is late
# ... "lagged": more than 10 ms late although its user was free and waiting for it -- the
# loop or the process was the limit (the asyncio and uvloop timers fire up to a
# millisecond late by design; a user still busy with its last request when the send was
# due is a slow target or too few users, not a lagging generator). Over 1% of sends
# lagged makes a second client-bound (clients/sampler.py), and a capacity step too.
LAGGED_NS = 10_000_000


class Picker:
    """Weighted choice of the next request, from a seeded generator (one per user)."""

    def __init__(self, specs: list[RequestSpec] | list[float], seed: int) -> None:
        """`specs`: the requests (their weights), or the weights themselves (requests
        then flows: Job.weights)."""
        self.rng = random.Random(seed)
        total = 0.0
        self.cum: list[float] = []
        for spec in specs:
            total += spec if isinstance(spec, int | float) else spec.weight
            self.cum.append(total)
        self.total = total
        self.single = len(specs) == 1

    def pick(self) -> int:
        if self.single:
            return 0
        return bisect.bisect_right(self.cum, self.rng.random() * self.total)


class Pacer:
    """Shared by all users of one process: bounds, stages and the open model's schedule."""

    def __init__(self, job: Job, t0: float) -> None:
        self.job = job
        self.t0 = t0                                   # perf_counter seconds: run start
        self.t_measure = t0 + job.warmup_s             # measurement starts here
        self.t_end = self.t_measure + job.duration_s
        self.stopped = False  # a plain flag: read on every request, set once
        self._lock = threading.Lock()
        self._claimed = 0
        self._next_t = t0                              # open model: schedule position
        self._credit = 1.0                             # sends owed: the first goes at t0
        # the credit the next send needs: 1 for evenly spaced sends; for Poisson arrivals
        # a unit exponential draw, so the gaps are exponential at any rate, a ramp too
        # (a Poisson process in the rate's integral)
        self._poisson = job.arrivals == "poisson"
        self._rng = random.Random(job.seed * 104729 + 17)
        self._due = self._draw(self._rng)
        # open model: sends the schedule intended within the measured window (with Poisson
        # arrivals their count varies around rate x duration; a step is judged on it)
        self.intended = 0

    def _draw(self, rng: random.Random) -> float:
        return rng.expovariate(1.0) if self._poisson else 1.0

    def target(self, now: float) -> float:
        """Concurrency (closed) or rate (open) at `now`.

        Stages ramp linearly from the previous stage's target, the first from 0 (like k6);
        a warm-up runs at the first stage's target.
        """
        job = self.job
        if not job.stages:
            return float(job.concurrency if job.mode == "closed" else job.rate or 0.0)
        if now < self.t_measure:
            return job.stages[0][1]
        t = now - self.t_measure
        previous = 0.0
        for duration, goal in job.stages:
            if t < duration:
                return previous + (goal - previous) * (t / duration)
            t -= duration
            previous = goal
        return previous

    def running(self, now: float) -> bool:
        return now < self.t_end and not self.stopped

    def active(self, user: int, now: float) -> bool:
        """Closed model with stages: only the first target(now) users send."""
        return not self.job.stages or user < self.target(now)

    def claim(self, now: float) -> bool:
        """One more request allowed? Warm-up requests do not count against the total."""
        total = self.job.total_requests
        if total is None or now < self.t_measure:
            return True
        with self._lock:
            if self._claimed >= total:
                return False
            self._claimed += 1
            if self._claimed >= total:
                self.stopped = True  # the others stop after their current request
            return True

    def _advance(self, t: float, credit: float, due: float
                 ) -> tuple[float | None, float, float]:
        """From (t, credit) to the next intended send: integrate the rate until `due`
        more credit is owed. Exact for constant rates; 10 ms steps where the rate is low or
        ramps. Returns (send time or None past the end, new t, new credit)."""
        while t < self.t_end:
            rate = self.target(t)
            need = due - credit
            if rate > 1e-9 and need / rate <= 0.01:
                t += need / rate
                if t >= self.t_end:
                    break
                return t, t, 0.0
            credit += rate * 0.01
            t += 0.01
        return None, t, credit

    def next_intended(self) -> float | None:
        """Open model: the intended send time of the next request, or None when done."""
        with self._lock:
            if self.stopped or time.perf_counter() >= self.t_end:
                return None  # what was due and not sent by the end counts as skipped
            if self._credit >= 1.0 and self._next_t < self.t_end:  # the very first send
                self._credit = 0.0
                self.intended += self._next_t >= self.t_measure
                return self._next_t
            send, self._next_t, self._credit = self._advance(self._next_t, self._credit,
                                                             self._due)
            if send is not None:
                self._due = self._draw(self._rng)
                if send >= self.t_measure:
                    self.intended += 1
            return send

    def skipped(self, now: float) -> int:
        """Open model: intended sends due before the end that were never made."""
        if self.job.mode != "open" or self.stopped:
            return 0
        t, credit, owed = self._next_t, self._credit, 0
        if credit >= 1.0 and t < min(now, self.t_end):
            owed, credit = 1, 0.0
        rng = random.Random()   # the schedule's own draws, from where it stands
        with self._lock:
            rng.setstate(self._rng.getstate())
            due = self._due
        while owed < 10_000_000:
            send, t, credit = self._advance(t, credit, due)
            if send is None or send >= now:
                break
            owed += 1
            due = self._draw(rng)
        return owed


def sleep_until(t: float) -> None:
    delay = t - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
