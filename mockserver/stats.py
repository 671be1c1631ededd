"""Request counters of one server process, and the exact merge of several processes' counts.

Admin requests (`/_mock/*`) and `/health` are never counted: the harness reconciles what it
sent against `requests_total`, and a health probe or a stats poll must not skew that.
"""

from __future__ import annotations

import time
from typing import Any


class Stats:
    """Plain counters, touched once per request on the hot path (dict.get + store)."""

    __slots__ = ("requests_total", "by_route", "by_status", "faults", "bytes_out",
                 "connections_open", "connections_total", "since", "malformed_requests",
                 "fast_hits", "fast_status", "connections_evicted", "connections_refused",
                 "request_timeouts", "tls_handshakes", "tls_resumed",
                 "auth_ok", "auth_rejected", "h2_requests", "h2_streams", "h2_connections",
                 "h2_offenders", "h2_goaways")

    def __init__(self) -> None:
        self.connections_open = 0
        self.fast_status = 200
        self.reset()

    def reset(self) -> None:
        """Zero everything except open connections, which are a level, not a count."""
        self.requests_total = 0
        self.by_route: dict[str, int] = {}
        self.by_status: dict[int, int] = {}
        self.faults: dict[str, int] = {}
        self.bytes_out = 0
        self.connections_total = 0
        self.malformed_requests = 0
        self.connections_evicted = 0   # closed to make room (limits.max_connections)
        self.connections_refused = 0   # closed at once: at the cap, and no one to evict
        self.request_timeouts = 0      # closed mid-request (limits.request_timeout_s)
        self.tls_handshakes = 0        # completed TLS handshakes, resumed ones included
        self.tls_resumed = 0           # of which resumed a session (ticket or cache)
        self.auth_ok = 0               # /auth/me with a valid token or sid cookie
        self.auth_rejected = 0         # /auth/me without one (401)
        self.h2_requests = 0           # of requests_total, those that came over HTTP/2
        self.h2_streams = 0            # HTTP/2 streams opened by peers
        self.h2_connections = 0        # connections that spoke HTTP/2 (TLS ALPN or h2c)
        self.h2_offenders: dict[str, int] = {}   # connections closed for an attack, by kind
        self.h2_goaways = 0            # graceful GOAWAYs sent (shutdown, /_mock/goaway)
        self.fast_hits = 0  # default-profile replies from the fast path, folded in on read
        self.since = time.time()

    def fold(self) -> None:
        """Move fast-path hits into the regular counters (before a read or a config change)."""
        if self.fast_hits:
            n, self.fast_hits = self.fast_hits, 0
            self.requests_total += n
            self.by_route["default"] = self.by_route.get("default", 0) + n
            self.by_status[self.fast_status] = self.by_status.get(self.fast_status, 0) + n

    def count(self, route: str, status: int) -> None:
        self.requests_total += 1
        self.by_route[route] = self.by_route.get(route, 0) + 1
        self.by_status[status] = self.by_status.get(status, 0) + 1

    def auth(self, ok: bool) -> None:
        if ok:
            self.auth_ok += 1
        else:
            self.auth_rejected += 1

    def fault(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        self.fold()
        return {
            "requests_total": self.requests_total,
            "by_route": dict(self.by_route),
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "faults": dict(self.faults),
            "bytes_out": self.bytes_out,
            "connections_open": self.connections_open,
            "connections_total": self.connections_total,
            "malformed_requests": self.malformed_requests,
            "connections_evicted": self.connections_evicted,
            "connections_refused": self.connections_refused,
            "request_timeouts": self.request_timeouts,
            "tls_handshakes": self.tls_handshakes,
            "tls_resumed": self.tls_resumed,
            "auth_ok": self.auth_ok,
            "auth_rejected": self.auth_rejected,
            "by_protocol": {"HTTP/1.1": self.requests_total - self.h2_requests,
                            "HTTP/2": self.h2_requests},
            "h2": {"connections": self.h2_connections, "streams": self.h2_streams,
                   "goaways": self.h2_goaways, "offenders": dict(self.h2_offenders)},
            "since": self.since,
            "processes": 1,
        }


def merge_snapshots(snaps: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum per-process snapshots; `since` is the earliest reset among them."""
    out: dict[str, Any] = {"requests_total": 0, "by_route": {}, "by_status": {}, "faults": {},
                           "bytes_out": 0, "connections_open": 0, "connections_total": 0,
                           "malformed_requests": 0, "connections_evicted": 0,
                           "connections_refused": 0, "request_timeouts": 0,
                           "tls_handshakes": 0, "tls_resumed": 0, "auth_ok": 0,
                           "auth_rejected": 0, "since": None,
                           "processes": 0}
    out["by_protocol"] = {"HTTP/1.1": 0, "HTTP/2": 0}
    out["h2"] = {"connections": 0, "streams": 0, "goaways": 0, "offenders": {}}
    for snap in snaps:
        for name, n in snap.get("by_protocol", {}).items():
            out["by_protocol"][name] = out["by_protocol"].get(name, 0) + n
        h2 = snap.get("h2", {})
        for key in ("connections", "streams", "goaways"):
            out["h2"][key] += h2.get(key, 0)
        for name, n in h2.get("offenders", {}).items():
            out["h2"]["offenders"][name] = out["h2"]["offenders"].get(name, 0) + n
        for key in ("requests_total", "bytes_out", "connections_open", "connections_total",
                    "malformed_requests", "connections_evicted", "connections_refused",
                    "request_timeouts", "tls_handshakes", "tls_resumed", "auth_ok",
                    "auth_rejected", "processes"):
            out[key] += snap[key]
        for key in ("by_route", "by_status", "faults"):
            for name, n in snap[key].items():
                out[key][name] = out[key].get(name, 0) + n
        since = snap["since"]
        out["since"] = since if out["since"] is None else min(out["since"], since)
    out["by_status"] = dict(sorted(out["by_status"].items()))
    out["queues"] = merge_queues([snap.get("queues", {}) for snap in snaps])
    return out


def merge_queues(parts: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Each process runs its own stations: depth, busy, served, rejected and capacity add
    up; the mean wait is weighted by what each served, the max is the max."""
    out: dict[str, dict[str, Any]] = {}
    for part in parts:
        for label, q in part.items():
            m = out.get(label)
            if m is None:
                out[label] = dict(q)
                continue
            served = m["served"] + q["served"]
            m["wait_ms_mean"] = (m["wait_ms_mean"] * m["served"] + q["wait_ms_mean"]
                                 * q["served"]) / served if served else 0.0
            for key in ("depth", "busy", "served", "rejected", "capacity_rps", "servers"):
                m[key] += q[key]
            m["wait_ms_max"] = max(m["wait_ms_max"], q["wait_ms_max"])
    return out
