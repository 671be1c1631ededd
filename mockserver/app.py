"""One server process's state (config, stats, rng, connections) and request handling.

`handle` is called by the protocol for every parsed request and returns a Reply: it
resolves the route to a Plan, applies the latency header and the faults, counts the request
and builds (or reuses) the response bytes.
"""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING, Any

from mockserver import admin
from mockserver.config import MockConfig
from mockserver.http import (
    CLOSE,
    HANG,
    KEEP,
    RESET,
    Reply,
    Request,
    body_bytes,
    head,
    json_response,
)
from mockserver.latency import ConfigError, parse_latency_header
from mockserver.routes import BUILTIN_SEGMENTS, Plan, paced_body, plan_for
from mockserver.stats import Stats

if TYPE_CHECKING:
    from mockserver.cluster import Cluster
    from mockserver.protocol import HttpProtocol

_MALFORMED = b"HTTP/1.1 2x0 N\x00T-HTTP\r\nContent-Length: banana\r\n\r\n{{{"


class App:
    def __init__(self, config: MockConfig, *, seed: int | None = None, index: int = 0,
                 admin_token: str | None = None, admin_open: bool = True) -> None:
        self.config = config
        self.stats = Stats()
        self.rng = random.Random(None if seed is None else seed * 1_000_003 + index)
        self.index = index
        self.admin_token = admin_token
        self.admin_open = admin_open
        self.connections: set[HttpProtocol] = set()
        self.cluster: Cluster | None = None
        self._cache: dict[tuple[int, int, bool, bool], bytes] = {}
        self.fast_paths: dict[bytes, bool] = {}
        self.set_config(config)

    # -- state shared with the admin API ---------------------------------------------------

    def set_config(self, config: MockConfig) -> None:
        """Swap configs atomically; re-derive what the protocol's fast path may assume."""
        self.stats.fold()
        self.config = config
        default = config.default
        faults = default.faults if default.faults is not None else config.faults
        self.fast_path = not config.routes and default.latency is None and not faults.any
        self.fast_paths = {}
        self.fast_response = head(default.status, default.body_bytes, True) + (
            b"" if default.status in (204, 304) else body_bytes(default.body_bytes))
        self.stats.fast_status = default.status

    def classify_fast(self, url: bytes) -> bool:
        """Does this URL reach the default profile (not admin, health or a built-in route)?"""
        path = url.partition(b"?")[0]
        first = path[1:].partition(b"/")[0].decode("latin-1")
        hit = path[:1] == b"/" and first not in BUILTIN_SEGMENTS
        if len(self.fast_paths) < 4096:
            self.fast_paths[url] = hit
        return hit

    def connection_opened(self, conn: HttpProtocol) -> None:
        self.connections.add(conn)
        self.stats.connections_open += 1
        self.stats.connections_total += 1

    def connection_closed(self, conn: HttpProtocol) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            self.stats.connections_open -= 1

    def local_stats(self) -> dict[str, Any]:
        return self.stats.snapshot()

    # -- requests ---------------------------------------------------------------------------

    def handle(self, req: Request, conn: HttpProtocol) -> Reply:
        path = req.path
        if path.startswith("/_mock/"):
            return admin.handle(self, req)
        is_head = req.method == "HEAD"
        if path == "/health":
            return Reply(json_response(200, {"status": "ok"}, req.keep_alive, is_head))

        plan = plan_for(req, self.config, self.rng)
        override = req.header(b"x-mock-latency")
        if override is not None:
            try:
                plan.delay = parse_latency_header(override.decode("latin-1")).sample(self.rng)
            except (ConfigError, UnicodeDecodeError) as exc:
                plan = Plan(plan.label, 400, json.dumps({"error": str(exc)}).encode() + b"\n",
                            content_type=b"application/json")
        faults = plan.faults if plan.faults is not None else self.config.faults
        if faults.any:
            reply = self._inject(plan, faults, req)
            if reply is not None:
                self.stats.count(plan.label, 0)
                return reply
        self.stats.count(plan.label, plan.status)
        return self._reply(plan, req, is_head)

    def _inject(self, plan: Plan, faults: Any, req: Request) -> Reply | None:
        """Draw each fault independently; a connection-level fault replaces the reply."""
        rnd = self.rng.random
        if faults.reset and rnd() < faults.reset:
            self.stats.fault("reset")
            return Reply(delay=plan.delay, action=RESET)
        if faults.hang and rnd() < faults.hang:
            self.stats.fault("hang")
            return Reply(delay=faults.hang_ms / 1000.0, action=HANG)
        if faults.malformed and rnd() < faults.malformed:
            self.stats.fault("malformed")
            return Reply(_MALFORMED, delay=plan.delay, action=CLOSE)
        if faults.error and rnd() < faults.error:
            self.stats.fault("error")
            plan.status = faults.error_status
        if faults.spike and rnd() < faults.spike:
            self.stats.fault("spike")
            plan.delay += faults.spike_ms / 1000.0
        if faults.slow_body and rnd() < faults.slow_body and plan.drip is None:
            self.stats.fault("slow_body")
            body = plan.body if plan.body is not None else body_bytes(plan.body_len)
            rate = faults.slow_body_bytes_per_s
            plan.body, plan.drip = None, (len(body), len(body) / rate)
            plan.body_len = len(body)
            return self._reply(plan, req, req.method == "HEAD", chunked=False)
        return None

    def _reply(self, plan: Plan, req: Request, is_head: bool, chunked: bool = True) -> Reply:
        keep_alive = req.keep_alive
        if plan.drip is not None:
            total, seconds = plan.drip
            if req.http_version == "1.0":
                chunked = False  # HTTP/1.0 has no chunking: frame by Content-Length
            data = head(plan.status, None if chunked else total, keep_alive, plan.content_type)
            if is_head:
                return Reply(data, plan.delay)
            return Reply(data, plan.delay, action=KEEP if keep_alive else CLOSE,
                         stream=lambda conn: paced_body(conn, total, seconds, chunked))
        if plan.body is None:
            key = (plan.status, plan.body_len, keep_alive, is_head)
            data = self._cache.get(key)
            if data is None:
                data = head(plan.status, plan.body_len, keep_alive)
                if not is_head and plan.status not in (204, 304):
                    data += body_bytes(plan.body_len)
                if len(self._cache) > 512:
                    self._cache.clear()
                self._cache[key] = data
        else:
            data = head(plan.status, len(plan.body), keep_alive, plan.content_type)
            if not is_head and plan.status not in (204, 304):
                data += plan.body
        return Reply(data, plan.delay)
