"""The admin API under /_mock/: config, stats, metrics, reset, goaway (every HTTP/2
connection is sent a graceful GOAWAY). Never counted in stats.

On loopback it is open; elsewhere the server insists on a bearer token (see cli.py). A PUT
validates the whole config before anything changes, so a bad one leaves the old in place.
"""

from __future__ import annotations

import hmac

from mockserver import metrics
from mockserver.checks import parse_document
from mockserver.cluster import Cluster
from mockserver.config import parse_config
from mockserver.errors import ConfigError
from mockserver.http import Reply, Request, json_response, response
from mockserver.state import ServerState
from mockserver.stats import merge_snapshots

_ENDPOINTS = {"config": ("GET", "PUT"), "stats": ("GET",), "metrics": ("GET",),
              "reset": ("POST",), "goaway": ("POST",)}


class Admin:
    def __init__(self, state: ServerState, cluster: Cluster, token: str | None,
                 open_without_token: bool) -> None:
        self.state = state
        self.cluster = cluster
        self.token = token
        self.open = open_without_token

    def authorized(self, req: Request) -> bool:
        if self.token is None:
            return self.open
        given = req.header(b"authorization") or b""
        return hmac.compare_digest(given, b"Bearer " + self.token.encode())

    def handle(self, req: Request) -> Reply:
        keep = req.keep_alive
        if not self.authorized(req):
            return Reply(json_response(
                401, {"error": "admin API needs Authorization: Bearer <token>"}, keep))
        name = req.path[len("/_mock/"):]
        if name not in _ENDPOINTS:
            return Reply(json_response(404, {"error": f"no admin endpoint /_mock/{name}"},
                                       keep))
        if req.method not in _ENDPOINTS[name]:
            return Reply(json_response(405, {"error": f"/_mock/{name} takes "
                                             + " or ".join(_ENDPOINTS[name])}, keep))
        cluster = self.cluster
        if name == "config" and req.method == "GET":
            return Reply(json_response(200, self.state.config.to_dict(), keep))

        if name == "config":
            try:
                raw = parse_document((req.body or b"null").decode("utf-8"), "JSON")
                parse_config(raw)  # validate before any process changes
            except ValueError as exc:  # ConfigError, UnicodeDecodeError and the document's
                field = exc.field if isinstance(exc, ConfigError) else "body"
                message = exc.message if isinstance(exc, ConfigError) else str(exc)
                return Reply(json_response(400, {"error": message, "field": field}, keep))

            async def put() -> bytes:
                await cluster.call_all({"op": "config", "config": raw})
                return json_response(200, self.state.config.to_dict(), keep)
            return Reply(produce=put)

        if name in ("stats", "metrics"):
            async def stats() -> bytes:
                answers = await cluster.call_all({"op": "stats"})
                merged = merge_snapshots([a for a in answers if a is not None])
                merged["missing_processes"] = sum(a is None for a in answers)
                if name == "metrics":
                    return response(200, metrics.render(merged), keep,
                                    content_type=metrics.CONTENT_TYPE)
                return json_response(200, merged, keep)
            return Reply(produce=stats)

        if name == "goaway":
            async def goaway() -> bytes:
                answers = await cluster.call_all({"op": "goaway"})
                return json_response(200, {
                    "connections": sum(a.get("connections", 0) for a in answers if a),
                    "missing_processes": sum(a is None for a in answers)}, keep)
            return Reply(produce=goaway)

        async def reset() -> bytes:
            answers = await cluster.call_all({"op": "reset"})
            return json_response(200, {"reset": True,
                                       "missing_processes": sum(a is None for a in answers)},
                                 keep)
        return Reply(produce=reset)
