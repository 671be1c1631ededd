"""Headless Chromium driven over its DevTools protocol, for tests that look at a page as a
person would (the report) or record what a browser sends (a HAR). Skips the test where
Chromium is not installed (.ci/run installs it where apt is available)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import pytest


@contextmanager
def chromium(prefix: list[str] | None = None) -> Iterator[str]:
    """A headless Chromium with a throw-away profile; yields its DevTools websocket URL.
    `prefix` goes before the command (the benchmarks pin it with taskset)."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not installed (.ci/run installs it where apt is available)")
    profile = tempfile.mkdtemp(prefix="lh-chromium-")
    proc = subprocess.Popen([*(prefix or []), exe, "--headless", "--no-sandbox", "--disable-gpu",
                             "--disable-quic", "--no-first-run",
                             "--disable-background-networking", "--disable-component-update",
                             "--disable-sync", f"--user-data-dir={profile}",
                             "--remote-debugging-port=0", "about:blank"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ws_url = None
        for _ in range(200):
            m = re.search(r"DevTools listening on (ws://\S+)", proc.stderr.readline())
            if m:
                ws_url = m.group(1)
                break
        assert ws_url, "chromium did not open its DevTools port"
        yield ws_url
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(profile, ignore_errors=True)


Call = Callable[..., Awaitable[dict]]


async def in_page(ws_url: str, on_event: Callable[[str, dict], None],
                  work: Callable[[Call, str], Awaitable[Any]]) -> Any:
    """Open a page target, pass every protocol event to `on_event(method, params)`, and run
    `work(call, session_id)`; `call(method, session_id, **params)` sends one command."""
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url) as ws:
        ids = iter(range(1, 10_000))
        pending: dict[int, asyncio.Future] = {}

        async def reader() -> None:
            async for msg in ws:
                data = json.loads(msg.data)
                if "id" in data and data["id"] in pending:
                    pending.pop(data["id"]).set_result(data)
                elif "method" in data:
                    on_event(data["method"], data.get("params", {}))

        async def call(method: str, session_id: str | None = None, **params: Any) -> dict:
            i = next(ids)
            pending[i] = asyncio.get_running_loop().create_future()
            msg: dict[str, Any] = {"id": i, "method": method, "params": params}
            if session_id:
                msg["sessionId"] = session_id
            await ws.send_str(json.dumps(msg))
            return (await asyncio.wait_for(pending[i], 30))["result"]

        task = asyncio.ensure_future(reader())
        try:
            target = await call("Target.createTarget", url="about:blank")
            sid = (await call("Target.attachToTarget", targetId=target["targetId"],
                              flatten=True))["sessionId"]
            return await work(call, sid)
        finally:
            task.cancel()


async def open_page(call: Callable[..., Any], sid: str, url: str, height: int = 1600) -> None:
    """What a person's browser does: a 1280-px window, the page loaded; the protocol's
    domains enabled first so PageWatch sees every error and request from the start."""
    for domain in ("Page", "Runtime", "Log", "Network"):
        await call(f"{domain}.enable", sid)
    await call("Emulation.setDeviceMetricsOverride", sid, width=1280, height=height,
               deviceScaleFactor=1, mobile=False)
    await call("Page.navigate", sid, url=url)


class PageWatch:
    """What a page did, from its protocol events: console errors and exceptions, every
    URL it requested, and (once) its load event."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.loaded = asyncio.get_running_loop().create_future()

    def __call__(self, method: str, params: dict) -> None:
        if method == "Runtime.exceptionThrown":
            self.errors.append(str(params.get("exceptionDetails")))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append(str(params.get("args")))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.errors.append(params["entry"]["text"])
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Page.loadEventFired" and not self.loaded.done():
            self.loaded.set_result(True)
