"""A load process's own signals, sampled every second of the measured window: is the
generator the limit? A capacity figure, a verdict or a latency is only worth something
when it was not.

A second is client-bound when any of these fired (core/names.py holds each line):

- `cpu`: the process used >= SATURATED_CPU of a core (Locust warns at 90% too);
- `starved`: its CPU plus the time its threads waited runnable for a CPU (Linux
  schedstat) reached SATURATED_CPU: it wanted a core and did not get one -- another job on
  its host, a sibling on its core; its own CPU stays low, yet it cannot send on time;
- `loop_lag`: its loop (the event loop, or the thread that ticks it) woke more than
  LOOP_LAG_S after it asked to in most of the second's ticks (the median: a lasting lag,
  every timer and send of that second as late; one 15 ms hiccup of a collector at 9% CPU
  is in `loop_lag_ms`, the second's worst, and fires nothing);
- `late`: more than LATE_SHARE of its sends went out over pacing.LAGGED_NS late;
- `host_busy`: the host had under HOST_IDLE of its CPU idle (psutil) and the process waited
  for a CPU at least HOST_WAIT of the second: the machine was the limit. (A busy host
  that never kept this process from a core -- the other core busy, this one free -- did
  not slow what it measured; on a two-core runner with a CPU hog beside the suite it
  fired on models that had all they needed.)

`seconds` keeps one row per measured second (client.csv): second, cpu, loop lag in ms,
late ratio, host idle, and the signal that fired ("" for none).
"""

from __future__ import annotations

import os
import resource
import time
from typing import Any

import psutil

from harness.core.names import HOST_IDLE, HOST_WAIT, LATE_SHARE, LOOP_LAG_S, SATURATED_CPU


def cpu_s() -> float:
    """CPU seconds (user + system) of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_queue_wait_s() -> float | None:
    """Seconds this process's threads have spent runnable but waiting for a CPU (Linux
    schedstat, summed over its threads); None where the kernel does not say."""
    total = 0
    try:
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/schedstat", "rb") as f:
                    total += int(f.read().split()[1])
            except (OSError, IndexError, ValueError):
                continue   # a thread that ended between the listing and the read
    except OSError:
        return None
    return total / 1e9


def host_idle_s() -> tuple[float, float]:
    """(idle CPU seconds, all CPU seconds) of the host so far, over every core."""
    times = psutil.cpu_times()
    total = sum(times)
    return times.idle + getattr(times, "iowait", 0.0), total


class ClientSampler:
    """Called from the load process's tick (every `every` seconds): samples once a second
    after `t_measure`, and keeps the loop's lag between."""

    def __init__(self, t_measure: float, model: Any = None, every: float = 0.25) -> None:
        self.t_measure = t_measure
        self.model = model          # a LocalModel: its recorder's sent and lagged counts
        self.every = every
        now = time.perf_counter()
        self.t, self.cpu, self.wait = now, cpu_s(), run_queue_wait_s()
        self.host = host_idle_s()
        self.sends = self._sends()
        self.last_tick = now
        self.lags: list[float] = []   # the wake-up lags of the second being sampled
        self.saturated = self.sampled = 0
        self.signals: dict[str, int] = {}
        self.seconds: list[list[Any]] = []

    def _sends(self) -> tuple[int, int]:
        rec = getattr(self.model, "recorder", None)
        if rec is None:
            return 0, 0
        return sum(rec.sent), sum(getattr(rec, "lagged", ()))

    def sample(self) -> None:
        now = time.perf_counter()
        self.lags.append(max(0.0, now - self.last_tick - self.every))
        self.last_tick = now
        if now - self.t < 1.0:
            return
        cpu, wait, host, sends = cpu_s(), run_queue_wait_s(), host_idle_s(), self._sends()
        if self.t >= self.t_measure:  # warm-up seconds are not judged
            span = now - self.t
            used = (cpu - self.cpu) / span
            waited = max(0.0, wait - self.wait) / span \
                if wait is not None and self.wait is not None else 0.0
            all_s = host[1] - self.host[1]
            idle = (host[0] - self.host[0]) / all_s if all_s > 0 else 1.0
            sent = sends[0] - self.sends[0]
            late = (sends[1] - self.sends[1]) / sent if sent > 0 else 0.0
            lags = sorted(self.lags)
            signal = "cpu" if used >= SATURATED_CPU else \
                "starved" if used + waited >= SATURATED_CPU else \
                "loop_lag" if lags and lags[len(lags) // 2] > LOOP_LAG_S else \
                "late" if late > LATE_SHARE else \
                "host_busy" if idle < HOST_IDLE and waited >= HOST_WAIT else ""
            self.sampled += 1
            if signal:
                self.saturated += 1
                self.signals[signal] = self.signals.get(signal, 0) + 1
            self.seconds.append([int(self.t - self.t_measure), round(used, 4),
                                 round(1000 * max(self.lags, default=0.0), 3), round(late, 5),
                                 round(idle, 4),
                                 signal])
        self.t, self.cpu, self.wait, self.host, self.sends = now, cpu, wait, host, sends
        self.lags = []
