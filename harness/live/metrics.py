"""/metrics: the live board in Prometheus text format (prometheus_client's own writer).

A collector reads the board's plain counts at scrape time -- nothing is recorded into a
Prometheus object per request or per interval, and a scrape never touches a histogram.

`loadharness_requests_total` counts measured requests (warm-up left out): at the end of a
model it equals summary.csv's `requests` for that model and name. Every request put on the
wire, warm-up included, is `loadharness_requests_sent_total` (summary.csv's `sent`).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    StateSetMetricFamily,
)
from prometheus_client.registry import Collector

from harness.live.board import BUCKETS_S, LiveBoard
from harness.stats import error_kind

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
RUN_STATES = ("waiting", "running", "writing", "done")


class BoardCollector(Collector):
    def __init__(self, board: LiveBoard) -> None:
        self.board = board

    def collect(self) -> Any:
        values = self.board.metric_values()
        requests = CounterMetricFamily(
            "loadharness_requests", "Measured requests (warm-up left out), as summary.csv",
            labels=["model", "name"])
        failures = CounterMetricFamily(
            "loadharness_failures", "Failed measured requests, by error kind",
            labels=["model", "name", "kind"])
        latency = HistogramMetricFamily(
            "loadharness_latency_seconds", "Measured request latency",
            labels=["model", "name"])
        sent = CounterMetricFamily(
            "loadharness_requests_sent", "Requests put on the wire, warm-up included",
            labels=["model"])
        users = GaugeMetricFamily(
            "loadharness_users", "Users at work (closed model; 0 when the model is not "
            "running or runs the open model)", labels=["model"])
        running = GaugeMetricFamily("loadharness_model_running",
                                    "1 while this model runs", labels=["model"])
        for label, state, n_sent, n_users, names in values["models"]:
            sent.add_metric([label], n_sent)
            users.add_metric([label], n_users)
            running.add_metric([label], 1 if state == "running" else 0)
            for name, c in sorted(names.items()):
                requests.add_metric([label, name], c.requests)
                kinds: dict[str, int] = {}
                for key, n in c.errors.items():   # kind:status keys -> kind labels
                    kinds[error_kind(key)[0]] = kinds.get(error_kind(key)[0], 0) + n
                for kind, n in sorted(kinds.items()):
                    failures.add_metric([label, name, kind], n)
                buckets = [(f"{b:g}", n) for b, n in zip(BUCKETS_S, c.buckets, strict=True)]
                latency.add_metric([label, name], [*buckets, ("+Inf", c.requests)],
                                   sum_value=c.sum_s)
        workers = GaugeMetricFamily("loadharness_workers", "Workers by state",
                                    labels=["state"])
        workers.add_metric(["alive"], values["workers_alive"])
        workers.add_metric(["lost"], values["workers_lost"])
        state = StateSetMetricFamily("loadharness_run_state", "Where the run is",
                                     value={s: s == values["state"] for s in RUN_STATES})
        yield from (requests, failures, latency, sent, users, running, workers, state)


def registry_for(board: LiveBoard) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BoardCollector(board))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
