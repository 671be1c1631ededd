"""A worker's slice of the run (Job) and the load shape every client model follows (Pacer).

The coordinator divides concurrency, rate and request count across workers; a Job is
what one worker receives (as a plain dict over the wire). The Pacer answers the questions
every client loop asks -- may user i run now, may I send one more, when was this request
meant to go out -- so closed/open load, stages, warm-up and bounds behave the same in
every concurrency model.
"""

from __future__ import annotations

import bisect
import random
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from harness.scenario import ModelSpec, RequestSpec, Scenario

LATE_NS = 1_000_000          # a send more than 1 ms after its intended time is late
MAX_COUNT_RUN_S = 600.0      # a count-bounded run without a duration stops after this


@dataclass(frozen=True)
class Job:
    model: str
    engine: str
    processes: int
    sub_model: str
    cpu_work: int
    url: str
    requests: list[dict[str, Any]]
    mode: str
    concurrency: int
    rate: float | None
    stages: list[list[float]]      # [[duration_s, target], ...], target already divided
    duration_s: float              # measured seconds (after warm-up)
    total_requests: int | None
    warmup_s: float
    timeout_s: float
    think_time_s: float
    seed: int
    label: str

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Job:
        return cls(**data)

    @property
    def specs(self) -> list[RequestSpec]:
        return [RequestSpec(r["name"], r["method"], r["path"],
                            tuple(tuple(h) for h in r["headers"]), r["body"], r["weight"],
                            tuple(r["expect_status"])) for r in self.requests]

    @property
    def host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        return parts.hostname or "127.0.0.1", parts.port or 80

    @property
    def base_path(self) -> str:
        return urlsplit(self.url).path.rstrip("/")

    def with_share(self, index: int, parts: int) -> Job:
        """This job split again (the process model's sub-processes)."""
        return Job(**{**asdict(self), **share_fields(self.concurrency, self.rate, self.stages,
                                                      self.total_requests, index, parts,
                                                      self.mode),
                      "seed": self.seed * 1009 + index})


def _split_int(total: int, index: int, parts: int) -> int:
    return total // parts + (1 if index < total % parts else 0)


def share_fields(concurrency: int, rate: float | None, stages: list[list[float]],
                 total: int | None, index: int, parts: int, mode: str) -> dict[str, Any]:
    """One part's share of concurrency, rate, stage targets and count; never below one user."""
    stage_scale = 1.0 / parts
    return {
        "concurrency": max(1, _split_int(concurrency, index, parts)),
        "rate": None if rate is None else rate / parts,
        "stages": [[d, t * stage_scale if mode == "open" else t / parts] for d, t in stages],
        "total_requests": None if total is None else _split_int(total, index, parts),
    }


def make_job(scenario: Scenario, model: ModelSpec, url: str, index: int, workers: int) -> Job:
    concurrency = 1 if model.model == "sync" else (model.concurrency or scenario.concurrency)
    stages = [[s.duration_s, s.target] for s in scenario.stages]
    duration = scenario.run_seconds or MAX_COUNT_RUN_S
    if scenario.total_requests is not None and not scenario.duration_s and not stages:
        duration = MAX_COUNT_RUN_S
    return Job(
        model=model.model, engine=model.engine, processes=model.processes,
        sub_model=model.sub_model, cpu_work=model.cpu_work, url=url,
        requests=[{"name": r.name, "method": r.method, "path": r.path,
                   "headers": [list(h) for h in r.headers], "body": r.body,
                   "weight": r.weight, "expect_status": list(r.expect_status)}
                  for r in scenario.requests],
        mode=scenario.mode, duration_s=duration,
        warmup_s=scenario.warmup_s, timeout_s=scenario.timeout_s,
        think_time_s=scenario.think_time_s, seed=scenario.seed * 7919 + index,
        label=model.label,
        **share_fields(concurrency, scenario.rate, stages, scenario.total_requests, index,
                       workers, scenario.mode),
    )


class Picker:
    """Weighted choice of the next request, from a seeded generator (one per user)."""

    def __init__(self, specs: list[RequestSpec], seed: int) -> None:
        self.rng = random.Random(seed)
        total = 0.0
        self.cum: list[float] = []
        for spec in specs:
            total += spec.weight
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

    def _advance(self, t: float, credit: float) -> tuple[float | None, float, float]:
        """From (t, credit) to the next intended send: integrate the rate until one more
        send is owed. Exact for constant rates; 10 ms steps where the rate is low or ramps.
        Returns (send time or None past the end, new t, new credit)."""
        while t < self.t_end:
            rate = self.target(t)
            need = 1.0 - credit
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
                return self._next_t
            send, self._next_t, self._credit = self._advance(self._next_t, self._credit)
            return send

    def skipped(self, now: float) -> int:
        """Open model: intended sends due before the end that were never made."""
        if self.job.mode != "open" or self.stopped:
            return 0
        t, credit, due = self._next_t, self._credit, 0
        if credit >= 1.0 and t < min(now, self.t_end):
            due, credit = 1, 0.0
        while due < 10_000_000:
            send, t, credit = self._advance(t, credit)
            if send is None or send >= now:
                break
            due += 1
        return due


def sleep_until(t: float) -> None:
    delay = t - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
