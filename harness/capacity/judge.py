"""One step of a capacity search, measured and judged.

A step is judged on the exactly merged HDR histogram of its measured seconds across every
worker (the coordinator's merge, never a worker's own numbers). It passes when the
generator had room, the achieved rate is within ACHIEVED of what its schedule intended
(the offered rate; with Poisson arrivals, the count it drew for the window), and the SLO
holds. A failing step says why, first cause first: `client` (the generator was the
limit: its process, or its host, had no CPU left), `target` (achieved short of offered
while the client had CPU room), `errors` (the SLO's error rate, or ERRORS without one),
`slo:<metric>` -- or `client` for those two when the generator was late meanwhile: over
LATE_SHARE of its sends lagged (over 10 ms late while their user waited; a 1 ms lateness
is what asyncio's and uvloop's timers give by design) or were skipped, or its loop
lagged. The failure may then be its own; a pass despite it stands.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from harness.core.names import SATURATED_SHARE
from harness.core.outcome import ModelResult
from harness.hdr import summarize
from harness.stats import on_the_wire

ACHIEVED = 0.97      # a step's achieved rate must be within 3% of what was offered
LATE_SHARE = 0.01    # sends lagged (> 10 ms late) or skipped: at most 1%
ERRORS = 0.01        # without an error_rate in the SLO, more than 1% errors fails a step
OUT_OF_ROOM = ("cpu", "starved", "host_busy")   # sampler signals: no CPU left to send with


@dataclass
class Step:
    """One row of capacity.csv."""

    model: str
    step: int
    offered: float          # requests/s (over rate) or users (over concurrency)
    achieved_rps: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    mean_ms: float
    error_rate: float
    late_ratio: float
    client_saturated_s: int
    client_sampled_s: int
    client_signals: str
    passed: bool = False
    reason: str = ""
    littles_law: float = float("nan")   # concurrency: N / (X * mean latency), ideally 1
    # open model: the rate the schedule meant in the window (with Poisson arrivals it
    # varies around `offered` by chance; achieved is judged against it)
    intended_rps: float = float("nan")

    def row(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def little_flagged(self) -> bool:
        """A closed step whose users were not all waiting on the target: N differs from
        X times the mean latency by more than 5% (Little's law)."""
        return self.littles_law == self.littles_law and abs(self.littles_law - 1) > 0.05


STEP_COLUMNS = tuple(f.name for f in fields(Step))   # capacity.csv's columns


def measure(result: ModelResult, model: str, step: int, offered: float,
            measured_s: float) -> Step:
    """The step's numbers from its merged histograms (the requests on the wire: flow rows
    left out, as in the Aggregated row) and its workers' DONE totals."""
    everything = on_the_wire(result.by_name)
    hist = everything.hist
    n = hist.get_total_count()
    failures = sum(everything.errors.values())
    totals = list(result.totals.values())
    sent = sum(int(t.get("sent", 0)) for t in totals)
    skipped = sum(int(t.get("skipped", 0)) for t in totals)
    scheduled = sum(int(t.get("intended", 0)) for t in totals)
    late = sum(int(t.get("lagged", 0)) for t in totals) + skipped
    signals: dict[str, int] = {}
    for t in totals:
        for cause, k in t.get("saturated_by", {}).items():
            signals[cause] = signals.get(cause, 0) + int(k)

    got = summarize(hist, (50.0, 90.0, 95.0, 99.0, 99.9))   # us; NaN when empty

    def ms(q: float) -> float:
        return got[str(q)] / 1000
    return Step(
        model=model, step=step, offered=offered,
        # what ended within the step's window: the tail that ended after it (a queue
        # building at overload) is in the histogram, not in the rate
        achieved_rps=max(n - result.tail_requests, 0) / measured_s if measured_s else 0.0,
        p50_ms=ms(50.0), p90_ms=ms(90.0), p95_ms=ms(95.0), p99_ms=ms(99.0), p999_ms=ms(99.9),
        max_ms=got["max"] / 1000, mean_ms=got["mean"] / 1000,
        error_rate=failures / n if n else 0.0,
        # of the sends the window intended (lagged ones are counted in the window only)
        late_ratio=late / intended if (intended := scheduled or (
            offered * measured_s if offered > 0 else sent + skipped)) else 0.0,
        intended_rps=scheduled / measured_s if scheduled and measured_s else float("nan"),
        client_saturated_s=sum(int(t.get("saturated_s", 0)) for t in totals),
        client_sampled_s=sum(int(t.get("sampled_s", 0)) for t in totals),
        client_signals=" ".join(f"{c}:{k}" for c, k in sorted(signals.items())))


def judge(step: Step, slo: tuple[Any, ...], over: str, capped: bool = False) -> Step:
    """Set the step's verdict (passed, reason) and return it. `capped`: the model could
    not open the users the step asked for (the sync model's one user): then falling short
    of the offered rate is its own limit, not the target's."""
    reason = ""
    # the generator out of room: its CPU or the host's (late sends and a lagging loop
    # are a busy loop's symptoms; they judge a step below, where the target kept up)
    signals = dict(part.split(":") for part in step.client_signals.split())
    no_room = sum(int(n) for cause, n in signals.items() if cause in OUT_OF_ROOM)
    client_bound = step.client_sampled_s > 0 and \
        no_room > SATURATED_SHARE * step.client_sampled_s
    if client_bound:
        reason = "client"
    elif over == "rate" and step.achieved_rps < ACHIEVED * (
            step.intended_rps if step.intended_rps == step.intended_rps else step.offered):
        # short of what was offered: the target's limit while the client had room
        reason = "client" if capped else "target"
    else:
        rate_slo = [th for th in slo if th.metric == "error_rate"]
        if (rate_slo and not all(th.holds(step.error_rate) for th in rate_slo)) or \
                (not rate_slo and step.error_rate > ERRORS):
            reason = "errors"
        else:
            for th in slo:
                if th.metric != "error_rate" and not th.holds(getattr(step, th.metric,
                                                                      float("nan"))):
                    reason = f"slo:{th.metric}"
                    break
        # lateness over rate is the step's own late_ratio (all its sends); the seconds the
        # sampler called `late` are not counted again: in a 3 s step one late second was
        # half of them, and a step whose sends were 0.5% late was called the client's
        by_second = step.client_saturated_s - (int(signals.get("late", 0)) if over == "rate" else 0)
        lagging = (over == "rate" and step.late_ratio > LATE_SHARE) or \
            (step.client_sampled_s > 0
             and by_second > SATURATED_SHARE * step.client_sampled_s)
        if reason and lagging:
            # the SLO failed while the generator sent late or its loop lagged: the
            # failure may be the generator's own (a pass despite it stands: the target
            # did at least that well)
            reason = "client"
    step.passed, step.reason = not reason, reason
    return step
