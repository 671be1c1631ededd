"""Target benchmarks: zero-delay capacity and /delay/50 fidelity, under wrk."""

from __future__ import annotations

import sys

from bench.common import (
    ROOT,
    Section,
    aiohttp_app,
    free_port,
    have_wrk,
    mockserver,
    nginx,
    pinned,
    wrk,
)


def capacity(seconds: float) -> Section:
    """Requests/s of one target process on one core, wrk on the other, 50 connections."""
    rows: dict[str, float] = {}
    port = free_port()
    with pinned(mockserver(port), port):
        rows["mockserver (uvloop)"] = wrk(f"http://127.0.0.1:{port}/", 50, seconds).rps
    port = free_port()
    with pinned(mockserver(port, "--loop", "asyncio"), port):
        rows["mockserver (asyncio loop)"] = wrk(f"http://127.0.0.1:{port}/", 50, seconds).rps
    port = free_port()
    with pinned(aiohttp_app(port), port):
        rows["aiohttp web.Application"] = wrk(f"http://127.0.0.1:{port}/", 50, seconds).rps
    port = free_port()
    with pinned([sys.executable, str(ROOT / "bench" / "bare_protocol.py"), str(port)], port):
        rows["bare httptools protocol (reference)"] = wrk(
            f"http://127.0.0.1:{port}/", 50, seconds).rps
    port = free_port()
    with nginx(port) as proc:
        if proc is not None:
            rows["nginx (1 worker)"] = wrk(f"http://127.0.0.1:{port}/", 50, seconds).rps
    ours = rows["mockserver (uvloop)"]
    aio = rows["aiohttp web.Application"]
    nginx_rps = rows.get("nginx (1 worker)")
    table = ["| target | requests/s | vs aiohttp app |", "|---|---:|---:|"]
    table += [f"| {name} | {rps:,.0f} | {rps / aio:.2f}x |" for name, rps in rows.items()]
    goals = [(f"mockserver >= 3x the aiohttp app ({ours / aio:.2f}x)", ours >= 3 * aio)]
    line = f"capacity: mockserver / aiohttp app = {ours / aio:.2f}x"
    if nginx_rps:
        goals.append((f"mockserver >= 0.8x nginx ({ours / nginx_rps:.2f}x)",
                      ours >= 0.8 * nginx_rps))
        line += f", mockserver / nginx = {ours / nginx_rps:.2f}x"
    bare = rows["bare httptools protocol (reference)"]
    line += f", mockserver / bare protocol = {ours / bare:.2f}x"
    return Section("Target capacity (zero delay, one process, wrk -c50)", line, table, goals,
                   notes="The bare protocol answers one canned reply with no routing, stats or "
                         "limits: the ceiling for any Python server on this loop.")


def fidelity(seconds: float, levels: tuple[int, ...]) -> Section:
    """How much a target adds to /delay/50: observed p50 and p99 minus 50 ms."""
    results: dict[str, dict[int, tuple[float, float]]] = {}
    for name, cmd in (("mockserver", mockserver), ("aiohttp app", aiohttp_app)):
        port = free_port()
        with pinned(cmd(port), port):
            results[name] = {}
            for c in levels:
                r = wrk(f"http://127.0.0.1:{port}/delay/50", c, seconds)
                results[name][c] = (r.p50_ms - 50, r.p99_ms - 50)
    table = ["| concurrency | mockserver p50 | mockserver p99 | aiohttp p50 | aiohttp p99 |",
             "|---:|---:|---:|---:|---:|"]
    for c in levels:
        m, a = results["mockserver"][c], results["aiohttp app"][c]
        table.append(f"| {c} | +{m[0]:.2f} ms | +{m[1]:.2f} ms | +{a[0]:.2f} ms | +{a[1]:.2f} ms |")
    goals = []
    line = "fidelity: overhead over 50 ms"
    if 200 in levels:
        p50, p99 = results["mockserver"][200]
        goals = [(f"at 200: p50 <= +1 ms ({p50:+.2f})", p50 <= 1.0),
                 (f"at 200: p99 <= +3 ms ({p99:+.2f})", p99 <= 3.0)]
        a50, a99 = results["aiohttp app"][200]
        line += f" at 200: mockserver +{p50:.2f}/+{p99:.2f} ms, aiohttp +{a50:.2f}/+{a99:.2f} ms"
    return Section("Latency fidelity of /delay/50 (wrk)", line, table, goals,
                   notes="Overhead is observed latency minus the 50 ms asked for, as seen "
                         "by wrk on the other core.")


def run(quick: bool) -> list[Section]:
    if not have_wrk():
        return [Section("Target benchmarks", "skipped: wrk is not installed "
                        "(apt-get install wrk)", [])]
    seconds = 3 if quick else 10
    return [capacity(seconds), fidelity(seconds, (1, 10, 50, 200, 1000))]
