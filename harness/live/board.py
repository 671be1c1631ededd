"""What a watcher of a run sees while it runs: the dashboard's state and /metrics' counts.

The coordinator's thread feeds the board (a progress hook about four times a second, and
each interval as it closes, from the interval sink); the web server's thread reads it.
Every histogram is read on the coordinator's side, once per closed interval, into plain
numbers: the web thread only copies lists and dicts under a short lock, so a browser or a
scraper never holds up the ZeroMQ loop, and the loop never waits on more than a copy.

Counts here are the results' counts: `requests` is what summary.csv will say (warm-up
left out), `sent` is every request put on the wire (warm-up included), as meta.json.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

from harness.core.outcome import ModelResult, RunOutcome
from harness.hdr import cumulative_at, summarize
from harness.reports.curves import curve_data, slo_limits
from harness.reports.intervals import AGGREGATED
from harness.scenario import Scenario
from harness.stats import IntervalStats, error_kind, is_flow, on_the_wire

# Prometheus latency buckets, seconds (HDR holds the exact distribution; these are for
# Grafana's histogram_quantile)
BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
             30.0)
_BUCKETS_US = tuple(int(b * 1e6) for b in BUCKETS_S)
_PCTS = (50.0, 95.0, 99.0)


@dataclass
class NameCounts:
    """One (model, request name): cumulative counts a scrape reads as they are."""

    requests: int = 0
    errors: dict[str, int] = field(default_factory=dict)     # kind -> count
    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKETS_S))
    sum_s: float = 0.0


@dataclass
class ModelView:
    label: str
    index: int
    state: str = "pending"          # pending | running | done | stopped
    elapsed_s: float = 0.0
    sent: int = 0
    users: int = 0
    # one point per closed second of the Aggregated row: [second, rps, failures/s, p50,
    # p95, p99] (ms; None where the second held no request)
    points: list[list[float | None]] = field(default_factory=list)
    names: dict[str, NameCounts] = field(default_factory=dict)
    # so far, read on the coordinator's side only: Aggregated, and each request name a
    # threshold names (the rest need no histogram here: /metrics has their counts)
    whole: dict[str, IntervalStats] = field(default_factory=dict)
    totals: dict[str, Any] = field(default_factory=dict)   # the table's row, so far
    name_totals: dict[str, dict[str, Any]] = field(default_factory=dict)   # those names
    result: ModelResult | None = None
    step_index: int = -1      # a capacity search: the step whose seconds `points` hold


def _ms(value: float) -> float | None:
    return None if math.isnan(value) else round(value / 1000.0, 3)


class LiveBoard:
    """The run as it goes, for the dashboard (`snapshot`) and Prometheus (`metric_values`)."""

    def __init__(self, scenario: Scenario, expect_workers: int) -> None:
        self.scenario = scenario
        self.expect_workers = expect_workers
        self.lock = threading.Lock()
        self.stop_requested = threading.Event()
        self.state = "waiting"        # waiting | running | writing | done
        self.current: str | None = None
        self.workers: list[dict[str, Any]] = []
        self.models = [ModelView(m.label, i) for i, m in enumerate(scenario.models)]
        self.ending: str | None = None
        self.run_dir: str | None = None
        self._verdict: tuple[int, dict[str, Any] | None] = (0, None)
        self.judged_names = {th.request for th in scenario.thresholds if th.request}
        # a capacity run: label -> (its steps as capacity.csv rows, its answer so far)
        self.capacity: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {}
        self.slo_ms = slo_limits(scenario.capacity.slo) if scenario.capacity else {}

    # -- fed by the coordinator's thread ----------------------------------------------------

    def _view(self, result: ModelResult) -> ModelView:
        """The model a result belongs to: a capacity search's step (`MODEL @ LOAD`, an
        index past the models) is its model's, its points and table row the step's own."""
        if result.index < len(self.models):
            return self.models[result.index]
        label = result.label.split(" @ ")[0]
        view = next((v for v in self.models if v.label == label), self.models[-1])
        if view.step_index != result.index:   # a new step: its own seconds from 0
            with self.lock:
                view.step_index = result.index
                view.points = []
                view.whole = {}
                view.totals = {}
                view.name_totals = {}
        return view

    def searched(self, found: Any) -> None:
        """The capacity runner's listener: a model's search so far (steps, bracket) or its
        answer once it has one."""
        rows = [step.row() for step in found.steps]
        answer = found.to_dict()
        with self.lock:
            self.capacity[found.model] = (rows, answer)

    def progress(self, result: ModelResult, elapsed: float, extra: dict[str, Any]) -> None:
        """The coordinator's progress hook: the running model, its time, the workers."""
        view = self._view(result)
        with self.lock:
            self.state = "running"
            self.current = result.label
            view.elapsed_s = elapsed
            view.sent = result.sent()
            view.users = self._users(result) if not extra.get("ended") else 0
            if "workers" in extra:
                self.workers = extra["workers"]
            if extra.get("ended"):
                view.state = "stopped" if result.aborted else "done"
                view.result = result
                self.current = None
            else:
                view.state = "running"

    def interval(self, result: ModelResult, second: int, cells: dict[str, IntervalStats],
                 span: float) -> None:
        """A closed second (from the interval sink): its point on the charts, and the
        model's cumulative counts and percentiles, read from the histograms here."""
        view = self._view(result)
        agg = on_the_wire(cells)
        n = agg.hist.get_total_count()
        got = summarize(agg.hist, _PCTS)
        point = [second, round(n / span, 3), round(sum(agg.errors.values()) / span, 3),
                 *(_ms(got[str(p)]) for p in _PCTS)]
        updates = {}
        view.whole.setdefault(AGGREGATED, IntervalStats()).add(agg)
        for name, cell in cells.items():
            below, sum_us = cumulative_at(cell.hist, _BUCKETS_US)
            updates[name] = (cell.hist.get_total_count(), below, sum_us / 1e6,
                             list(cell.errors.items()))   # kind:status keys, kept
        seconds = max(second + span, 1e-9)
        totals = self._totals(view.whole[AGGREGATED], seconds)
        judged = {}
        for name in self.judged_names & cells.keys():
            view.whole.setdefault(name, IntervalStats()).add(cells[name])
        for name in self.judged_names & view.whole.keys():
            judged[name] = self._totals(view.whole[name], seconds)
        with self.lock:
            view.points.append(point)
            view.totals = totals
            view.name_totals.update(judged)
            for name, (requests, below, sum_s, errors) in updates.items():
                counts = view.names.setdefault(name, NameCounts())
                counts.requests += requests
                counts.buckets = [a + b for a, b in zip(counts.buckets, below, strict=True)]
                counts.sum_s += sum_s
                for kind, v in errors:
                    counts.errors[kind] = counts.errors.get(kind, 0) + v

    def finished(self, run_dir: str, ending: str) -> None:
        with self.lock:
            self.state = "done"
            self.run_dir = run_dir
            self.ending = ending

    def writing(self) -> None:
        with self.lock:
            self.state = "writing"

    @staticmethod
    def _totals(whole: IntervalStats, seconds: float) -> dict[str, Any]:
        """The model's Aggregated row so far, with every metric a threshold may name."""
        n = whole.hist.get_total_count()
        got = summarize(whole.hist, (50.0, 90.0, 95.0, 99.0, 99.9))
        failures = sum(whole.errors.values())
        return {"requests": n, "failures": failures, "rps": round(n / seconds, 1),
                "error_rate": failures / n if n else 0.0,
                **{f"p{p:g}_ms".replace(".", ""): _ms(got[str(p)])
                   for p in (50.0, 90.0, 95.0, 99.0, 99.9)},
                "max_ms": _ms(got["max"]), "mean_ms": _ms(got["mean"])}

    def _users(self, result: ModelResult) -> int:
        """The closed model's users (a capacity step's from its label: `@ N users`)."""
        if result.index >= len(self.models):
            load = result.label.rsplit(" @ ", 1)[-1]
            return int(load.split()[0]) if load.endswith(" users") else 0
        model = self.scenario.models[result.index]
        if self.scenario.mode == "open":
            return 0
        return model.concurrency or self.scenario.concurrency

    # -- read by the web server's thread ----------------------------------------------------

    def snapshot(self, since: dict[str, int] | None = None) -> dict[str, Any]:
        """The dashboard's state: everything, or only the points after `since` (label ->
        points already sent) for a live update."""
        since = since or {}
        with self.lock:
            models = [{
                "label": v.label, "state": v.state, "elapsed_s": round(v.elapsed_s, 1),
                "client": self._client(v),
                "remaining_s": self._remaining(v), "sent": v.sent, "users": v.users,
                "totals": dict(v.totals), "first": self._first(v, since),
                "points": v.points[self._first(v, since):],
                "errors": self._errors(v),
            } for v in self.models]
            state = {"state": self.state, "scenario": self.scenario.name,
                     "current": self.current, "workers": list(self.workers),
                     "expect_workers": self.expect_workers, "ending": self.ending,
                     "run_dir": self.run_dir, "models": models,
                     "stop_requested": self.stop_requested.is_set()}
            done = [v.result for v in self.models if v.result is not None]
            judged = {v.label: dict(v.name_totals) for v in self.models}
            searches = dict(self.capacity)
        if self.scenario.capacity is not None:
            state["capacity"] = curve_data(
                [row for rows, _ in searches.values() for row in rows],
                {label: answer for label, (_, answer) in searches.items()}, self.slo_ms)
        crossed = self._thresholds(models, judged)
        state["thresholds"] = [line for _, line in crossed]
        state["crossed_by"] = {}   # model -> its crossed thresholds: marked on its row
        for label, line in crossed:
            state["crossed_by"].setdefault(label, []).append(line)
        # a capacity run is judged by its searches (state["capacity"]), not its steps
        state["verdict"] = None if self.scenario.capacity else self._verdict_of(done)
        return state

    def _client(self, view: ModelView) -> str:
        """Once a model has ended: the sentence saying it measured its own client (its
        load processes' signals in their DONE), or "" -- said on its row, where its
        numbers are, as report.html and the verdict say it."""
        if view.result is None or not view.result.totals:
            return ""
        from harness.reports.results import model_totals, saturation_text
        t = model_totals(view.result, self.scenario)
        if not t.client_saturated:
            return ""
        return saturation_text(view.label, t.saturated_s, t.sampled_s, t.saturated_by)

    @staticmethod
    def _first(view: ModelView, since: dict[str, int]) -> int:
        """The first point to send: after those sent, or all again from 0 when the points
        began anew (a capacity search's next step): the page then starts its chart over."""
        sent = since.get(view.label, 0)
        return sent if sent <= len(view.points) else 0

    @staticmethod
    def _errors(view: ModelView) -> list[list[Any]]:
        """[kind, status, count] rows (status 0 for kinds without an answer), as
        errors.csv has them: an unexpected_status names its status."""
        keys: dict[str, int] = {}
        for name, counts in view.names.items():
            if not is_flow(name):
                for key, n in counts.errors.items():
                    keys[key] = keys.get(key, 0) + n
        return [[*error_kind(k), n] for k, n in sorted(keys.items())]

    def _remaining(self, view: ModelView) -> float | None:
        spec = self.scenario.capacity
        if view.state != "running" or not (spec or self.scenario.run_seconds):
            return None
        planned = spec.step_s + spec.step_warmup_s if spec else \
            self.scenario.run_seconds + self.scenario.warmup_s
        return round(max(planned - view.elapsed_s, 0.0), 1)

    def _thresholds(self, models: list[dict[str, Any]],
                    judged: dict[str, dict[str, dict[str, Any]]]) -> list[tuple[str, str]]:
        """Thresholds crossed so far, on the Aggregated row or the request they name, as
        the end of the run words them (reports/thresholds.py)."""
        crossed = []
        for th in self.scenario.thresholds:
            for m in models:
                row = m["totals"] if th.request is None else \
                    judged[m["label"]].get(th.request, {})
                actual = row.get(th.metric)
                if actual is not None and row.get("requests") and \
                        not th.holds(float(actual)):
                    crossed.append((m["label"],
                                    f"{m['label']}: {th} (was {float(actual):.4g})"))
        return crossed

    def _verdict_of(self, done: list[ModelResult]) -> dict[str, Any] | None:
        """The verdict table once two models have run, recomputed when another ends."""
        if len(done) < 2:
            return None
        count, cached = self._verdict
        if count == len(done):
            return cached
        from harness.reports.results import summary_frame
        from harness.reports.verdict import decide, format_verdict
        summary = summary_frame(RunOutcome(done, [], 0, 0, False), self.scenario)
        verdict = decide(self.scenario, summary, saturated=set())
        out = None
        if verdict is not None:
            table = verdict.table.astype(object).where(verdict.table.notna(), None)
            out = {"columns": [str(c) for c in table.columns],
                   "rows": table.values.tolist(),
                   "line": format_verdict(verdict).splitlines()[-1]}
        self._verdict = (len(done), out)
        return out

    def metric_values(self) -> dict[str, Any]:
        """What /metrics reports, copied under the lock."""
        with self.lock:
            return {
                "state": self.state,
                "current": self.current,
                "workers_alive": sum(1 for w in self.workers if w["alive"]),
                "workers_lost": sum(1 for w in self.workers if not w["alive"]),
                "models": [(v.label, v.state, v.sent, v.users,
                            {n: NameCounts(c.requests, dict(c.errors), list(c.buckets),
                                           c.sum_s) for n, c in v.names.items()})
                           for v in self.models],
            }
