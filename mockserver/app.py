"""handle(request) -> Reply: routes, latency and faults. Knows no socket.

`App.handle` is called by the protocol for every parsed request: it resolves the route to
an Answer, applies the latency header and the faults, counts the request and builds (or
reuses) the response bytes. Admin requests go to admin.py.
"""

from __future__ import annotations

import json
import time

from mockserver import admin
from mockserver.cluster import Cluster
from mockserver.errors import ConfigError
from mockserver.faults import inject
from mockserver.http import CLOSE, KEEP, Reply, Request, body_bytes, head, json_response
from mockserver.latency import delay_s, parse_latency_header
from mockserver.routes import Answer, answer_for, paced_body
from mockserver.state import ServerState


class App:
    def __init__(self, state: ServerState, cluster: Cluster, *, admin_token: str | None = None,
                 admin_open: bool = True) -> None:
        self.state = state
        self.admin = admin.Admin(state, cluster, admin_token, admin_open)

    def handle(self, req: Request) -> Reply:
        path = req.path
        if path.startswith("/_mock/"):
            return self.admin.handle(req)
        is_head = req.method == "HEAD"
        if path == "/health":
            return Reply(json_response(200, {"status": "ok"}, req.keep_alive, is_head))

        state = self.state
        config = state.config
        answer = answer_for(req, config, state.rng)
        override = req.header(b"x-mock-latency")
        if override is not None:
            try:
                answer.delay = delay_s(parse_latency_header(override.decode("latin-1")),
                                       state.rng)
            except (ConfigError, UnicodeDecodeError) as exc:
                answer = Answer(answer.label, 400,
                                json.dumps({"error": str(exc)}).encode() + b"\n",
                                content_type=b"application/json")
        if answer.queue is not None:   # wait for a server, or 503 when the queue is full
            held = state.station(answer.label, answer.queue).admit(time.monotonic(), state.rng)
            if held is None:
                answer = Answer(answer.label, 503, b'{"error": "queue full"}\n',
                                content_type=b"application/json")
            else:
                answer.delay += held
        faults = answer.faults if answer.faults is not None else config.faults
        if faults.any:
            reply = inject(answer, faults, state.rng, state.stats)
            if reply is not None:  # the connection is reset, hung or answered with garbage
                state.stats.count(answer.label, 0)
                return reply
        state.stats.count(answer.label, answer.status)
        if answer.label == "/auth/me":
            state.stats.auth(answer.status == 200)
        return self._reply(answer, req, is_head)

    def _reply(self, answer: Answer, req: Request, is_head: bool) -> Reply:
        keep_alive = req.keep_alive
        if answer.drip is not None:
            total, seconds = answer.drip
            # HTTP/1.0 has no chunking, HTTP/2 frames its own: frame by Content-Length
            chunked = answer.chunked and req.http_version not in ("1.0", "2")
            data = head(answer.status, None if chunked else total, keep_alive,
                        answer.content_type)
            if is_head:
                return Reply(data, answer.delay)
            return Reply(data, answer.delay, action=KEEP if keep_alive else CLOSE,
                         stream=lambda conn: paced_body(conn, total, seconds, chunked))
        if answer.body is None:
            status, length = answer.status, answer.body_len

            def build() -> bytes:
                data = head(status, length, keep_alive)
                if not is_head and status not in (204, 304):
                    data += body_bytes(length)
                return data
            data = self.state.cached_reply((status, length, keep_alive, is_head), build)
        else:
            data = head(answer.status, len(answer.body), keep_alive, answer.content_type,
                        answer.extra)
            if not is_head and answer.status not in (204, 304):
                data += answer.body
        return Reply(data, answer.delay)
