"""A queueing station: a target whose capacity is known.

`queue = { servers = 4, service_ms = 2, dist = "fixed" | "exponential", max_queue = 10000 }`
(the default profile, a route, or PUT /_mock/config): requests wait in FIFO order for one
of `servers` servers, each busy for its service time, so the true capacity is
servers / service time (2,000 req/s here) and waits follow M/D/k or M/M/k theory under
Poisson arrivals. A request arriving when `max_queue` already wait is answered 503 at once.

FIFO with k servers needs no timers: a request takes the server that frees first, so its
start and end are known the moment it arrives (start = max(now, earliest free), end =
start + its service time). The answer is simply held until its end (Reply.delay), and the
station is a heap of k free times plus the start times of those still waiting (a deque:
FIFO starts never decrease).
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from mockserver.checks import number
from mockserver.errors import ConfigError

DISTS = ("fixed", "exponential")
MAX_SERVERS = 100_000


@dataclass(frozen=True)
class QueueSpec:
    servers: int
    service_ms: float
    dist: str = "fixed"
    max_queue: int = 10_000

    @property
    def capacity_rps(self) -> float:
        """What the station can serve a second: servers / mean service time."""
        return self.servers / (self.service_ms / 1000)

    def to_dict(self) -> dict[str, Any]:
        return {"servers": self.servers, "service_ms": self.service_ms, "dist": self.dist,
                "max_queue": self.max_queue}


def parse_queue(raw: Any, name: str) -> QueueSpec:
    if not isinstance(raw, dict):
        raise ConfigError(name, f"expected a table {{servers, service_ms, dist, max_queue}}, "
                                f"got {raw!r:.60}")
    for key in raw:
        if key not in ("servers", "service_ms", "dist", "max_queue"):
            raise ConfigError(f"{name}.{key}", "unknown key (expected one of dist, "
                                               "max_queue, servers, service_ms)")
    if "servers" not in raw or "service_ms" not in raw:
        raise ConfigError(name, "expected servers and service_ms")
    dist = raw.get("dist", "fixed")
    if dist not in DISTS:
        raise ConfigError(f"{name}.dist", f"expected one of {', '.join(DISTS)}, got {dist!r:.40}")
    return QueueSpec(
        servers=number(raw["servers"], f"{name}.servers", 1, MAX_SERVERS, integer=True),
        service_ms=number(raw["service_ms"], f"{name}.service_ms", 0.001, 60_000),
        dist=dist,
        max_queue=number(raw.get("max_queue", 10_000), f"{name}.max_queue", 0, 10_000_000,
                         integer=True))


@dataclass
class Station:
    """One station's state: when each server frees, who still waits, what it served."""

    spec: QueueSpec
    free_at: list[float] = field(default_factory=list)   # a heap of k times
    waiting: deque[float] = field(default_factory=deque)  # start times still ahead
    served: int = 0
    rejected: int = 0
    wait_s_total: float = 0.0
    wait_s_max: float = 0.0

    def __post_init__(self) -> None:
        self.free_at = [0.0] * self.spec.servers

    def admit(self, now: float, rng: random.Random) -> float | None:
        """The seconds until this request's answer (its wait plus its service), or None
        when the queue is full (a 503)."""
        waiting = self.waiting
        while waiting and waiting[0] <= now:
            waiting.popleft()
        if len(waiting) >= self.spec.max_queue and self.free_at[0] > now:
            self.rejected += 1
            return None
        service = self.spec.service_ms / 1000
        if self.spec.dist == "exponential":
            service = rng.expovariate(1 / service)
        start = max(now, self.free_at[0])
        heapq.heapreplace(self.free_at, start + service)
        if start > now:
            waiting.append(start)
        wait = start - now
        self.served += 1
        self.wait_s_total += wait
        self.wait_s_max = max(self.wait_s_max, wait)
        return wait + service

    def snapshot(self, now: float) -> dict[str, Any]:
        """For /_mock/stats and /_mock/metrics: depth and busy servers now, waits so far."""
        waiting = self.waiting
        while waiting and waiting[0] <= now:
            waiting.popleft()
        return {**self.spec.to_dict(), "capacity_rps": self.spec.capacity_rps,
                "depth": len(waiting), "busy": sum(1 for t in self.free_at if t > now),
                "served": self.served, "rejected": self.rejected,
                "wait_ms_mean": 1000 * self.wait_s_total / self.served if self.served else 0.0,
                "wait_ms_max": 1000 * self.wait_s_max}
