"""The capacity search through the coordinator: each step a model run of its own (the same
PREPARE / START / STATS / DONE path, the same journal), at the load search.py chose,
measured and judged by judge.py; the model's answer from its steps (`Found`).

A step's result is labelled `MODEL @ RATE/s` (or `@ N users`): its seconds are in
timeseries.csv and its row in summary.csv like any model's, capacity.csv has one row per
step, meta.json each model's answer.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.capacity.judge import Step, judge, measure
from harness.capacity.knee import knee
from harness.capacity.search import ConcurrencySearch, RateSearch
from harness.capacity.usl import fit_usl
from harness.core.outcome import ModelResult
from harness.core.registry import MODELS
from harness.scenario import Scenario

MAX_STEP_USERS = 20_000   # the open model's users (connections) a step may open


@dataclass
class Found:
    """One model's search: its steps, and what they say."""

    model: str
    over: str
    slo: str
    steps: list[Step] = field(default_factory=list)
    capacity: float | None = None      # rate: the highest passing rate; concurrency: the
    # throughput at the best users
    users: int | None = None           # concurrency: the fewest users on the plateau
    low: float | None = None
    high: float | None = None
    limited_by: str = ""
    stopped_by: str = ""
    knee: float | None = None
    usl: dict[str, Any] | None = None

    @property
    def client_bound(self) -> bool:
        return self.limited_by == "client"

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in dataclasses.asdict(self).items() if k != "steps"}
        out["capacity_rps"] = out.pop("capacity")
        out["client_bound"] = self.client_bound
        out["line"] = self.line()
        return out

    def line(self) -> str:
        """What a user reads: the capacity, or the generator's own word that it was the
        limit -- never a capacity then."""
        if self.over == "concurrency":
            if self.capacity is None:
                return f"{self.model}: no step held {self.slo} ({self.limited_by})"
            usl = self.usl or {}
            fit = f"; USL peak N* {usl['n_star']:.0f}, X_max {usl['x_max']:,.0f} req/s " \
                  f"(R² {usl['r2']:.2f})" if usl.get("n_star") else ""
            return (f"{self.model}: {self.capacity:,.0f} req/s at {self.users} users "
                    f"holding {self.slo}{fit}")
        if self.client_bound:
            at_least = f"at least {self.low:,.0f} req/s, " if self.low else ""
            return f"{self.model}: {at_least}client-bound (the generator was the limit)"
        if self.capacity is None:
            return f"{self.model}: no rate held {self.slo} (limited by {self.limited_by})"
        bracket = f" (next step {self.high:,.0f} failed: {self.limited_by})" if self.high \
            else f" ({self.stopped_by})"
        knee_text = f"; knee near {self.knee:,.0f} req/s" if self.knee else ""
        return f"{self.model} holds {self.slo} up to {self.capacity:,.0f} req/s" \
               f"{bracket}{knee_text}"


class CapacityRunner:
    """What the coordinator runs for each model of a [capacity] scenario (in place of one
    run_model): the whole search, returning every step's result."""

    def __init__(self, scenario: Scenario,
                 listener: Callable[[Found], None] | None = None) -> None:
        """`listener`: told each model's search so far after every step and at its end
        (the live dashboard's board)."""
        assert scenario.capacity is not None
        self.listener = listener
        self.scenario = scenario
        self.spec = scenario.capacity
        self.found: dict[str, Found] = {}
        self.next_index = len(scenario.models)   # steps take model indices past the models

    def __call__(self, coordinator: Any, index: int, model: Any) -> list[ModelResult]:
        spec, sc = self.spec, self.scenario
        found, search, next_load = self._begin(model)
        results: list[ModelResult] = []
        while (load := next_load()) is not None:
            if spec.over == "rate":
                step_sc = dataclasses.replace(
                    sc, mode="open", rate=float(load), concurrency=self._users_for(load),
                    duration_s=spec.step_s, warmup_s=spec.step_warmup_s,
                    total_requests=None, stages=(), seed=self._seed(found))
                label = f"{model.label} @ {load:g} rps"
            else:
                step_sc = dataclasses.replace(
                    sc, mode="closed", rate=None, concurrency=int(load),
                    duration_s=spec.step_s, warmup_s=spec.step_warmup_s,
                    total_requests=None, stages=(), seed=self._seed(found))
                label = f"{model.label} @ {load} users"
            # the step's load is the search's: a model's own concurrency does not apply
            result = coordinator.run_model(self.next_index,
                                           dataclasses.replace(model, concurrency=None),
                                           scenario=step_sc, label=label)
            self.next_index += 1
            results.append(result)
            if not self._took(model, found, search, result, load, say=True):
                break
            self._tell(found)
        self._conclude(found, search)
        self._tell(found)
        return results

    def replay(self, results: list[ModelResult]) -> None:
        """A recovered run (`harness report` on one whose coordinator died): each model's
        search rebuilt from its steps' results, judged as the live run judged them, in
        the order they ran; a search the run did not finish ends `interrupted`."""
        for model in self.scenario.models:
            found, search, next_load = self._begin(model)
            for result in results:
                base, _, load_text = result.label.rpartition(" @ ")
                if base != model.label or next_load() is None:
                    continue
                load = float(load_text.split()[0])
                if not self._took(model, found, search, result,
                                  load if self.spec.over == "rate" else int(load)):
                    break
            if not search.stopped_by and next_load() is not None:
                search.stop("interrupted")
            if found.steps or search.stopped_by != "interrupted":
                self._conclude(found, search)
            else:
                del self.found[model.label]   # it never took a step

    def _begin(self, model: Any) -> tuple[Found, Any, Callable[[], Any]]:
        """A model's search from nothing: its Found, the search, and its next-load call."""
        spec = self.spec
        slo = ", ".join(str(th) for th in spec.slo)
        found = self.found[model.label] = Found(model.label, spec.over, slo)
        if spec.over == "rate":
            search: Any = RateSearch(spec.start_rate, spec.max_rate, spec.precision,
                                     spec.max_steps)
            return found, search, search.next_rate
        search = ConcurrencySearch(spec.max_users, spec.precision, spec.max_steps)
        return found, search, search.next_users

    def _took(self, model: Any, found: Found, search: Any, result: ModelResult,
              load: float, say: bool = False) -> bool:
        """A step's result judged and recorded in the search; False when the search
        cannot go on (the step was aborted)."""
        spec = self.spec
        if result.aborted:
            search.stop("aborted")
            return False
        # the sync baseline keeps its one user whatever the step asks
        capped = MODELS[model.sub_model if MODELS[model.model].wraps else model.model] \
            .single_user
        step = judge(measure(result, model.label, len(found.steps), float(load),
                             spec.step_s), spec.slo, spec.over, capped)
        if spec.over == "concurrency" and step.achieved_rps > 0 and step.mean_ms > 0:
            step.littles_law = load / (step.achieved_rps * step.mean_ms / 1000)
        found.steps.append(step)
        if say:
            print(f"capacity: {result.label}: {step.achieved_rps:,.0f} req/s, p99 "
                  f"{step.p99_ms:.1f} ms, errors {100 * step.error_rate:.2f}%: "
                  + ("pass" if step.passed else f"fail ({step.reason})"),
                  file=sys.stderr, flush=True)
        if spec.over == "rate":
            search.record(float(load), step.passed)
            if step.reason == "client":
                search.stop("client")   # beyond it, the generator measures itself
            found.low, found.high = search.low, search.high   # the bracket so far
        else:
            search.record(int(load), step.achieved_rps, step.passed)
        return True

    def _seed(self, found: Found) -> int:
        """Each step draws afresh (its request picks, its Poisson arrivals): with one seed
        every step replayed the same draws, and one lucky realization (9% more arrivals
        in the window) would have run through the whole search."""
        return (self.scenario.seed + 1000 * len(found.steps)) % (2**31)

    def _tell(self, found: Found) -> None:
        if self.listener is not None:
            self.listener(found)

    def _users_for(self, rate: float) -> int:
        """The open model's users (connections) for a step: twice what Little's law needs
        at the SLO's latency (at most 100 ms of it: opening thousands of connections at a
        step's start would make the generator late by itself), at least the scenario's own
        concurrency. A target slower than that runs the users out: achieved short of
        offered, `target`."""
        limits = [th.value for th in self.spec.slo if th.metric.endswith("_ms")]
        budget_s = min(max(limits) if limits else 100.0, 100.0) / 1000
        return int(min(MAX_STEP_USERS, max(self.scenario.concurrency,
                                           math.ceil(2 * rate * budget_s) + 10)))

    def _conclude(self, found: Found, search: Any) -> None:
        steps = found.steps
        found.stopped_by = search.stopped_by
        measured = [s for s in steps if s.reason != "client"]
        if found.over == "rate":
            found.low, found.high = search.low, search.high
            found.capacity = search.low
            failed_at = {s.offered: s.reason for s in steps if not s.passed}
            if search.stopped_by == "client":
                found.limited_by = "client"
            elif found.high is not None:
                found.limited_by = failed_at.get(found.high, "slo")
            else:
                found.limited_by = search.stopped_by
            if found.limited_by == "client":
                found.capacity = None   # "at least X, client-bound": never a capacity
        else:
            best = search.best
            found.users = best
            found.capacity = next((s.achieved_rps for s in steps if s.offered == best), None)
            found.limited_by = "plateau" if search.plateau_found else search.stopped_by
            if any(s.reason == "client" for s in steps):
                found.limited_by = "client"
            fit = fit_usl([s.offered for s in measured], [s.achieved_rps for s in measured])
            found.usl = fit.to_dict() if fit is not None else None
        # where p99 turns up against what was achieved (the generator-bound steps left out)
        found.knee = knee([s.achieved_rps for s in measured], [s.p99_ms for s in measured])
