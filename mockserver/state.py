"""ServerState: the narrow object every connection of one server process shares.

What the protocol, the handler, the admin API and the cluster need in common -- the config
(swapped atomically), the counters, the seeded rng, the open connections and the reply
cache the fast path serves from -- and nothing else. Made once per process, complete, and
handed to each of them (uvicorn's ServerState plays the same part).
"""

from __future__ import annotations

import random
import time
from typing import Any, Protocol

from mockserver.config import MockConfig
from mockserver.http import body_bytes, head
from mockserver.queue import QueueSpec, Station
from mockserver.routes import BUILTIN_SEGMENTS
from mockserver.stats import Stats


class Connection(Protocol):
    """What the server and its idle sweeper need of a connection (Connection is one;
    named here so the state need not import the protocol that imports it)."""

    transport: Any
    active: bool
    last_active: float
    messages: int

    @property
    def idle(self) -> bool: ...

    @property
    def owes_reply(self) -> bool: ...

    @property
    def mid_request(self) -> bool: ...

    def shutdown(self) -> None: ...

_FAST_PATHS_MAX = 4096
_REPLY_CACHE_MAX = 512


class ServerState:
    def __init__(self, config: MockConfig, *, seed: int | None = None, index: int = 0) -> None:
        self.stats = Stats()
        self.rng = random.Random(None if seed is None else seed * 1_000_003 + index)
        self.index = index
        self.connections: dict[Connection, None] = {}   # oldest first
        self.replies: dict[tuple[int, int, bool, bool], bytes] = {}   # built responses
        self.fast_paths: dict[bytes, bool] = {}
        self.http2 = True   # a plain connection may open with HTTP/2's preface (h2c)
        self.set_config(config)

    def set_config(self, config: MockConfig) -> None:
        """Swap configs atomically; re-derive what the protocol's fast path may assume."""
        self.stats.fold()
        self.config = config
        default = config.default
        faults = default.faults if default.faults is not None else config.faults
        self.fast_path = not config.routes and default.latency is None and not faults.any \
            and default.queue is None
        self.stations: dict[str, Station] = {}   # by route label: new with each config
        self.fast_paths = {}
        self.fast_response = head(default.status, default.body_bytes, True) + (
            b"" if default.status in (204, 304) else body_bytes(default.body_bytes))
        self.stats.fast_status = default.status

    def station(self, label: str, spec: QueueSpec) -> Station:
        """The queueing station of a route (or the default profile), made on first use."""
        station = self.stations.get(label)
        if station is None or station.spec != spec:
            station = self.stations[label] = Station(spec)
        return station

    def queues(self) -> dict[str, Any]:
        """Each station's depth, busy servers and waits, for /_mock/stats and metrics."""
        now = time.monotonic()
        return {label: s.snapshot(now) for label, s in self.stations.items()}

    def classify_fast(self, url: bytes) -> bool:
        """Does this URL reach the default profile (not admin, health or a built-in route)?"""
        path = url.partition(b"?")[0]
        first = path[1:].partition(b"/")[0].decode("latin-1")
        hit = path[:1] == b"/" and first not in BUILTIN_SEGMENTS
        if len(self.fast_paths) < _FAST_PATHS_MAX:
            self.fast_paths[url] = hit
        return hit

    def cached_reply(self, key: tuple[int, int, bool, bool], build: Any) -> bytes:
        """A response built once per (status, length, keep-alive, HEAD)."""
        data = self.replies.get(key)
        if data is None:
            data = build()
            if len(self.replies) > _REPLY_CACHE_MAX:
                self.replies.clear()
            self.replies[key] = data
        return data

    def connection_opened(self, conn: Connection) -> bool:
        """Admit a new connection; at limits.max_connections the oldest one that is owed
        nothing (idle, or stuck in a partial request: a slow client) is closed to make
        room, so a new client -- a health check -- is always served. False (refuse the
        new one) only when every connection is waiting for a reply of ours."""
        if len(self.connections) >= self.config.limits.max_connections:
            victim = next((c for c in self.connections if not c.owes_reply), None)
            if victim is None:
                self.stats.connections_refused += 1
                return False
            self.stats.connections_evicted += 1
            self.connection_closed(victim)
            if victim.transport is not None:
                victim.transport.abort()
        self.connections[conn] = None
        self.stats.connections_open += 1
        self.stats.connections_total += 1
        return True

    def replace_connection(self, old: Connection, new: Connection) -> None:
        """A connection that changed protocol (h2c's preface) keeps its count."""
        if self.connections.pop(old, False) is None:
            self.connections[new] = None

    def handshake_done(self, ssl_object: Any) -> None:
        """A TLS connection was made (asyncio and uvloop call connection_made once the
        handshake is complete): count it, and whether it resumed a session."""
        self.stats.tls_handshakes += 1
        if ssl_object.session_reused:
            self.stats.tls_resumed += 1

    def connection_closed(self, conn: Connection) -> None:
        if self.connections.pop(conn, False) is None:
            self.stats.connections_open -= 1
