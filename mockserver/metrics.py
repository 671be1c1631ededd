"""`GET /_mock/metrics`: the same counters as `/_mock/stats`, in Prometheus text format, so a
Grafana that scrapes the load (harness `--web` /metrics) shows the target beside it.

Rendered from the merged stats snapshot at scrape time: the request hot path never touches
a Prometheus object, and the two endpoints can never disagree.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

# (name, help, key in the snapshot); every one a counter since the last reset
_COUNTERS = [
    ("mock_bytes_out", "Response bytes sent", "bytes_out"),
    ("mock_connections", "Connections accepted", "connections_total"),
    ("mock_malformed_requests", "Requests refused as malformed HTTP", "malformed_requests"),
    ("mock_connections_evicted", "Connections closed to make room", "connections_evicted"),
    ("mock_connections_refused", "Connections closed at the connection cap",
     "connections_refused"),
    ("mock_request_timeouts", "Connections closed mid-request", "request_timeouts"),
    ("mock_tls_handshakes", "Completed TLS handshakes (resumed included)", "tls_handshakes"),
    ("mock_tls_resumed", "TLS handshakes that resumed a session", "tls_resumed"),
    ("mock_auth_ok", "/auth/me requests with a valid token or sid cookie", "auth_ok"),
    ("mock_auth_rejected", "/auth/me requests answered 401", "auth_rejected"),
]


class _Snapshot(Collector):
    def __init__(self, snap: dict[str, Any]) -> None:
        self.snap = snap

    def collect(self) -> Any:
        snap = self.snap
        total = CounterMetricFamily("mock_requests", "Requests answered (admin and /health "
                                    "excluded), as /_mock/stats requests_total")
        total.add_metric([], snap["requests_total"])
        yield total
        routes = CounterMetricFamily("mock_requests_by_route", "Requests answered, by route",
                                     labels=["route"])
        for route, n in sorted(snap["by_route"].items()):
            routes.add_metric([route], n)
        yield routes
        statuses = CounterMetricFamily("mock_responses", "Responses sent, by status",
                                       labels=["status"])
        for status, n in sorted(snap["by_status"].items()):
            statuses.add_metric([str(status)], n)
        yield statuses
        faults = CounterMetricFamily("mock_faults", "Faults injected, by kind", labels=["kind"])
        for kind, n in sorted(snap["faults"].items()):
            faults.add_metric([kind], n)
        yield faults
        protocols = CounterMetricFamily("mock_requests_by_protocol",
                                        "Requests answered, by protocol", labels=["protocol"])
        for name, n in sorted(snap.get("by_protocol", {}).items()):
            protocols.add_metric([name], n)
        yield protocols
        h2 = snap.get("h2", {})
        for name, help_text, key in (
                ("mock_h2_connections", "Connections that spoke HTTP/2", "connections"),
                ("mock_h2_streams", "HTTP/2 streams opened by peers", "streams"),
                ("mock_h2_goaways", "Graceful HTTP/2 GOAWAYs sent", "goaways")):
            family = CounterMetricFamily(name, help_text)
            family.add_metric([], h2.get(key, 0))
            yield family
        offenders = CounterMetricFamily("mock_h2_offenders", "HTTP/2 connections closed for "
                                        "an attack, by kind", labels=["kind"])
        for kind, n in sorted(h2.get("offenders", {}).items()):
            offenders.add_metric([kind], n)
        yield offenders
        for name, help_text, key in _COUNTERS:
            family = CounterMetricFamily(name, help_text)
            family.add_metric([], snap[key])
            yield family
        open_ = GaugeMetricFamily("mock_connections_open", "Connections open now")
        open_.add_metric([], snap["connections_open"])
        yield open_
        procs = GaugeMetricFamily("mock_processes", "Server processes that answered the scrape")
        procs.add_metric([], snap["processes"])
        yield procs
        missing = GaugeMetricFamily("mock_processes_missing",
                                    "Server processes that did not answer the scrape")
        missing.add_metric([], snap.get("missing_processes", 0))
        yield missing
        yield from _queue_families(snap.get("queues", {}))


# queueing stations (queue.py), by route: (name, help, key, gauge or counter)
_QUEUE = [
    ("mock_queue_depth", "Requests waiting for a server now", "depth", True),
    ("mock_queue_busy", "Servers busy now", "busy", True),
    ("mock_queue_capacity_rps", "Servers / mean service time", "capacity_rps", True),
    ("mock_queue_wait_ms_mean", "Mean wait for a server (ms)", "wait_ms_mean", True),
    ("mock_queue_served", "Requests a station admitted", "served", False),
    ("mock_queue_rejected", "Requests answered 503: the queue was full", "rejected", False),
]


def _queue_families(queues: dict[str, dict[str, Any]]) -> Any:
    for name, help_text, key, gauge in _QUEUE:
        family = (GaugeMetricFamily if gauge else CounterMetricFamily)(name, help_text,
                                                                        labels=["route"])
        for route, q in sorted(queues.items()):
            family.add_metric([route], q[key])
        yield family


def render(snap: dict[str, Any]) -> bytes:
    """The snapshot (merged across server processes) as Prometheus text."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(snap))
    return generate_latest(registry)
