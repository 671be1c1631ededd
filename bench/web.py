"""The dashboard's cost: the same fast-engine run with and without `--web`, with a headless
Chromium showing the dashboard (server-sent events each second) and a scraper reading
/metrics once a second. The coordinator serves both from a thread of its own process, on
the load's core: the goal is that the load does not notice (within 3%)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time
import urllib.request

from bench.common import (
    SERVER_CORE,
    Section,
    free_port,
    mockserver,
    nginx,
    nginx_available,
    pinned,
    taskset,
)
from bench.runner import closed, harness_command, harness_run, result_of

TITLE = "Dashboard: a run with and without --web (fast engine, one core)"
FAST = 'model = "uvloop"\nengine = "fast"'


def _scrape(url: str, stop: threading.Event, scrapes: list[int]) -> None:
    while not stop.wait(1.0):
        try:
            with urllib.request.urlopen(url + "metrics", timeout=2) as resp:
                if b"loadharness_requests_total" in resp.read():
                    scrapes.append(1)
        except OSError:
            return   # the run ended and its server with it


def _watch(url: str, seconds: float, seen: dict[str, str]) -> None:
    """Chromium on the server's core, the dashboard open until the run says finished."""
    from tests.devtools import chromium, in_page

    async def work(call, sid: str) -> None:
        await call("Page.enable", sid)
        await call("Page.navigate", sid, url=url)
        deadline = time.monotonic() + seconds + 60
        while time.monotonic() < deadline:
            got = await call("Runtime.evaluate", sid, returnByValue=True,
                             expression="document.getElementById('status').textContent")
            seen["status"] = got["result"].get("value", "")
            if seen["status"].startswith("finished"):
                return
            await asyncio.sleep(1.0)

    with chromium(taskset(SERVER_CORE)) as ws_url:
        asyncio.run(in_page(ws_url, lambda m, p: None, work))


def _with_web(text: str, target: str, seconds: float) -> tuple[float, int, str]:
    cmd = harness_command(text, target=target, extra=("--web", "127.0.0.1:0"))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("dashboard: "):
        proc.kill()
        raise RuntimeError(f"no dashboard line: {line!r}")
    url = line.split()[1]
    stop, scrapes, seen = threading.Event(), [], {}
    threads = [threading.Thread(target=_scrape, args=(url, stop, scrapes)),
               threading.Thread(target=_watch, args=(url, seconds, seen))]
    for t in threads:
        t.start()
    out, err = proc.communicate(timeout=seconds + 120)
    stop.set()
    for t in threads:
        t.join(60)
    result = result_of(proc.returncode, out, err)
    return float(result.agg()["rps"]), len(scrapes), seen.get("status", "")


def run(quick: bool) -> list[Section]:
    if shutil.which("chromium") is None and shutil.which("chromium-browser") is None:
        return [Section(TITLE, "web: skipped (chromium is not installed)", [])]
    seconds = 5 if quick else 15
    rounds = 1 if quick else 3
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    text = closed(FAST, 50, seconds)
    best = {"plain": 0.0, "web": 0.0}
    scrapes, status = 0, ""
    target = nginx(port) if nginx_available() else pinned(mockserver(port), port)
    with target:
        for r in range(rounds):
            for kind in (("plain", "web") if r % 2 == 0 else ("web", "plain")):
                if kind == "plain":
                    rps = float(harness_run(text, target=url).agg()["rps"])
                else:
                    rps, n, status = _with_web(text, url, seconds)
                    scrapes += n
                best[kind] = max(best[kind], rps)
    ratio = best["web"] / best["plain"]
    served = status.startswith("finished")
    table = ["| run | requests/s (best of rounds) |", "|---|---:|",
             f"| uvloop-fast, no `--web` | {best['plain']:,.0f} |",
             f"| uvloop-fast, `--web` + Chromium on the dashboard + /metrics at 1 Hz | "
             f"{best['web']:,.0f} |"]
    where = "nginx" if nginx_available() else "the mockserver"
    return [Section(TITLE,
                    f"web: with / without --web = {ratio:.3f}x", table,
                    [(f"with --web >= 0.97x without ({ratio:.3f}x)", ratio >= 0.97),
                     ("the browser saw the run to its end, /metrics answered "
                      f"({scrapes} scrapes)", served and scrapes > 0)],
                    notes=f"50 users against {where} on core {SERVER_CORE}, {seconds} s per "
                          f"run, best of {rounds} rounds in alternating order. Chromium runs "
                          "beside the target; the coordinator (and so the dashboard server) "
                          "beside the load, as a user's run would have it.")]
