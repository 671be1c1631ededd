"""Which load to try next: pure functions of the steps so far, no I/O.

Over rate (open model): double from the start until a step fails (or the maximum passes),
then bisect the bracket [highest pass, lowest fail] until it is within `precision` of its
lower end, or the steps run out. Over concurrency (closed model): users 1, 2, 4, ... until
throughput gains under 5% (the plateau) or a step fails, then bisect between the last
that gained and the first that did not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

PLATEAU_GAIN = 0.05    # over concurrency: a doubling that gains less has found the plateau


@dataclass
class RateSearch:
    start: float
    maximum: float
    precision: float
    max_steps: int
    passed: list[float] = field(default_factory=list)
    failed: list[float] = field(default_factory=list)
    stopped_by: str = ""     # why the search ended: bracket, max_rate, max_steps, client

    @property
    def low(self) -> float | None:
        """The highest rate that passed (None: none did)."""
        return max(self.passed) if self.passed else None

    @property
    def high(self) -> float | None:
        """The lowest rate that failed, above every pass (None: none did)."""
        above = [r for r in self.failed if self.low is None or r > self.low]
        return min(above) if above else None

    def next_rate(self) -> float | None:
        """The next rate to step at, or None: the search is over (stopped_by says why)."""
        if self.stopped_by:
            return None
        if len(self.passed) + len(self.failed) >= self.max_steps:
            self.stopped_by = "max_steps"
            return None
        low, high = self.low, self.high
        if high is None:   # still doubling
            if low is None:
                return self.start
            if low >= self.maximum:
                self.stopped_by = "max_rate"
                return None
            return min(low * 2, self.maximum)
        if low is None:    # the very first step failed: halve towards nothing
            if high / 2 < 1:
                self.stopped_by = "bracket"
                return None
            return high / 2
        if (high - low) / low <= self.precision:
            self.stopped_by = "bracket"
            return None
        return (low + high) / 2

    def record(self, rate: float, ok: bool) -> None:
        (self.passed if ok else self.failed).append(rate)

    def stop(self, why: str) -> None:
        self.stopped_by = why


@dataclass
class ConcurrencySearch:
    """Users double while throughput gains at least PLATEAU_GAIN (and the SLO holds); then
    the fewest users that reach the plateau (within PLATEAU_GAIN of the best throughput
    seen) are bisected for, in whole users, to `precision`."""

    maximum: int
    precision: float
    max_steps: int
    seen: dict[int, float] = field(default_factory=dict)   # users -> throughput
    failed: set[int] = field(default_factory=set)          # users that broke the SLO
    stopped_by: str = ""
    doubling: bool = True

    def _bounds(self) -> tuple[int | None, int | None]:
        """(most users below the plateau, fewest users on it or failing)."""
        ok = {u: x for u, x in self.seen.items() if u not in self.failed}
        top = max(ok.values(), default=0.0)
        below = [u for u, x in ok.items() if x < top * (1 - PLATEAU_GAIN)]
        on = [u for u, x in ok.items() if x >= top * (1 - PLATEAU_GAIN)]
        lo = max(below, default=None)
        hi = min([u for u in on if lo is None or u > lo]
                 + [u for u in self.failed if lo is None or u > lo], default=None)
        return lo, hi

    def next_users(self) -> int | None:
        if self.stopped_by:
            return None
        if len(self.seen) >= self.max_steps:
            self.stopped_by = "max_steps"
            return None
        if not self.seen:
            return 1
        if self.doubling:
            last = max(self.seen)
            if last >= self.maximum:
                self.stopped_by = "max_users"
                return None
            return min(last * 2, self.maximum)
        lo, hi = self._bounds()
        if lo is None or hi is None or hi - lo <= max(1, math.ceil(lo * self.precision)):
            self.stopped_by = "bracket"
            return None
        return (lo + hi) // 2

    def record(self, users: int, throughput: float, ok: bool) -> None:
        before = {u: x for u, x in self.seen.items() if u < users}
        self.seen[users] = throughput
        if not ok:
            self.failed.add(users)
        if self.doubling and (not ok or (before and throughput < before[max(before)]
                                          * (1 + PLATEAU_GAIN))):
            self.doubling = False

    def stop(self, why: str) -> None:
        self.stopped_by = why

    @property
    def plateau_found(self) -> bool:
        return not self.doubling and self.stopped_by == "bracket"

    @property
    def best(self) -> int | None:
        """The fewest users on the plateau (the highest throughput, give or take the
        plateau's gain), among those that held the SLO."""
        lo, hi = self._bounds()
        if hi is not None and hi not in self.failed:
            return hi
        ok = {u: x for u, x in self.seen.items() if u not in self.failed}
        return max(ok, key=lambda u: (ok[u], -u)) if ok else None
