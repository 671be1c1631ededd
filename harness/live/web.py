"""`--web`: the run's dashboard, its live updates and /metrics, served by the coordinator's
process from a thread of its own (aiohttp on its own event loop).

The coordinator's ZeroMQ loop never waits on a browser: pages, server-sent events and
scrapes read the LiveBoard's copies (board.py) on this thread. The Stop button sets an
event the coordinator checks as it does Ctrl-C, so a stopped run ends the same way
(partial, exit 3, every result written).

Off loopback the server insists on a token (`--web-token`): `Authorization: Bearer T`, or
`?token=T` for a browser, on every path -- as the mockserver's admin API does.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import json
import re
import threading
import time
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web

from harness import assets
from harness.errors import OptionError
from harness.live import metrics
from harness.live.board import LiveBoard
from mockserver.addresses import is_loopback  # the mockserver's rule, shared

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8089
_HOST = re.compile(r"[A-Za-z0-9._:-]{1,253}")   # a name, an IPv4 or an IPv6 address
UPDATE_S = 1.0
ASSETS = {"uPlot.iife.min.js": "text/javascript", "uPlot.min.css": "text/css",
          "charts.js": "text/javascript", "dashboard.js": "text/javascript",
          "dashboard.css": "text/css", "uPlot.LICENSE": "text/plain"}


def parse_web(value: str) -> tuple[str, int]:
    """`--web [HOST:]PORT` (or an empty value: 127.0.0.1:8089)."""
    if not value:
        return DEFAULT_HOST, DEFAULT_PORT
    host, _, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]") or DEFAULT_HOST
    if not _HOST.fullmatch(host) or not re.fullmatch(r"[0-9]{1,5}", port):
        raise OptionError(f"--web {value!r}: expected [HOST:]PORT, e.g. 127.0.0.1:8089")
    number = int(port)
    if number > 65535:
        raise OptionError(f"--web {value!r}: port {number} is not 0..65535")
    return host, number


def check_web(host: str, port: int, token: str | None) -> None:
    """Off loopback, a token: the dashboard shows the run and can stop it."""
    if token is None and not is_loopback(host):
        raise OptionError(f"--web {host}:{port} is not loopback: give --web-token T (the "
                          "dashboard shows the run and can stop it)")
    if token is not None and not token.strip():
        raise OptionError("--web-token: expected a non-empty token")


class WebServer:
    """The dashboard server. `start()` binds (a taken port is an OptionError: nothing of the
    run has started yet) and returns the URL; `close()` ends it."""

    def __init__(self, board: LiveBoard, host: str, port: int, token: str | None) -> None:
        check_web(host, port, token)
        self.board = board
        self.host, self.port = host, port
        self.token = token
        self.registry = metrics.registry_for(board)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.runner: web.AppRunner | None = None
        self.thread: threading.Thread | None = None
        self.url = ""
        self.streams = 0     # live event streams: close() lets each send the final state

    # -- lifecycle (called from the coordinator's thread) -----------------------------------

    def start(self) -> str:
        started: dict[str, Any] = {}
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self.loop = loop
            try:
                loop.run_until_complete(self._bind(started))
            except Exception as exc:  # noqa: BLE001 - any failure to listen is the option's
                started["error"] = exc
            ready.set()
            if "error" not in started:
                loop.run_forever()
            loop.close()

        self.thread = threading.Thread(target=serve, name="harness-web", daemon=True)
        self.thread.start()
        ready.wait(30)
        if "error" in started:
            exc = started["error"]
            raise OptionError(f"--web {self.host}:{self.port}: cannot listen: "
                              f"{getattr(exc, 'strerror', None) or exc}")
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{started['port']}/"
        return self.url

    def close(self) -> None:
        loop, runner = self.loop, self.runner
        if loop is None or runner is None or not loop.is_running():
            return
        deadline = time.monotonic() + 2 * UPDATE_S
        while self.streams and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        except (TimeoutError, RuntimeError):
            pass
        loop.call_soon_threadsafe(loop.stop)
        if self.thread is not None:
            self.thread.join(10)

    async def _bind(self, started: dict[str, Any]) -> None:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/", self._page)
        app.router.add_get("/assets/{name}", self._asset)
        app.router.add_get("/api/state", self._state)
        app.router.add_get("/api/events", self._events)
        app.router.add_post("/api/stop", self._stop)
        app.router.add_get("/metrics", self._metrics)
        self.runner = web.AppRunner(app, handle_signals=False, access_log=None,
                                    shutdown_timeout=1.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port, reuse_address=True)
        await site.start()
        started["port"] = self.runner.addresses[0][1]   # the port bound (0 picks one)

    # -- handlers (the web thread) ----------------------------------------------------------

    def _host_ok(self, host: str) -> bool:
        """On a loopback bind, the Host a browser sent must name this machine: a page of
        another site whose name was rebound to 127.0.0.1 (DNS rebinding) sends its own
        name, and would otherwise read the run and stop it without any token."""
        if not is_loopback(self.host):
            return True   # off loopback a token is required: it guards every path
        try:
            name = urlsplit(f"//{host}").hostname or ""
        except ValueError:
            return False
        return name in ("localhost", self.host.strip("[]")) or is_loopback(name)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not self._host_ok(request.headers.get("Host", "")):
            return web.json_response({"error": "Host must name this machine (127.0.0.1, "
                                               "localhost, ::1)"}, status=403)
        if self.token is not None:
            given = request.headers.get("Authorization", "")
            bearer = given[7:] if given.startswith("Bearer ") else ""
            query = request.query.get("token", "")
            # a raw non-UTF-8 header arrives with surrogates: compared as the same bytes,
            # never a 500 (and a traceback in the run's output)
            mine = self.token.encode()
            if not (hmac.compare_digest(bearer.encode("utf-8", "surrogateescape"), mine)
                    or hmac.compare_digest(query.encode("utf-8", "surrogateescape"), mine)):
                return web.json_response(
                    {"error": "the dashboard needs Authorization: Bearer <token> or "
                              "?token=<token>"}, status=401)
        response: web.StreamResponse = await handler(request)
        return response

    def _with_token(self, path: str) -> str:
        if self.token is None:
            return path
        return f"{path}?token={quote(self.token)}"

    async def _page(self, request: web.Request) -> web.Response:
        links = {name: self._with_token(f"/assets/{name}") for name in ASSETS}
        title = html.escape(self.board.scenario.name)
        page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - loadharness</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{links['uPlot.min.css']}">
<link rel="stylesheet" href="{links['dashboard.css']}">
</head><body>
<header><h1 id="title">{title}</h1><span id="status">connecting</span>
<button id="stop" type="button">Stop the run</button></header>
<main id="board"></main>
<script src="{links['uPlot.iife.min.js']}"></script>
<script src="{links['charts.js']}"></script>
<script src="{links['dashboard.js']}"></script>
</body></html>
"""
        return web.Response(text=page, content_type="text/html")

    async def _asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in ASSETS:
            raise web.HTTPNotFound()
        return web.Response(text=assets.read(name), content_type=ASSETS[name],
                            headers={"Cache-Control": "no-cache"})

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(self.board.snapshot())

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: each second, the state and the points not yet sent."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        sent: dict[str, int] = {}
        self.streams += 1
        try:
            while True:
                snap = self.board.snapshot(sent)
                for m in snap["models"]:
                    sent[m["label"]] = m["first"] + len(m["points"])
                await response.write(f"data: {json.dumps(snap)}\n\n".encode())
                if snap["state"] == "done":
                    break
                await asyncio.sleep(UPDATE_S)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.streams -= 1
        return response

    async def _stop(self, request: web.Request) -> web.Response:
        # a page of another origin may POST here too (a form needs no CORS preflight): the
        # browser names the page's origin, and only the dashboard's own may stop the run
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != request.host:
            return web.json_response({"error": f"a page at {origin} may not stop this run"},
                                     status=403)
        self.board.stop_requested.set()
        return web.json_response({"stopping": True}, status=202)

    async def _metrics(self, request: web.Request) -> web.Response:
        body = metrics.render(self.registry)
        return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})
