"""Load generation per core: every model and engine, Locust, and wrk, driving one target.

The target (nginx when installed, else the mockserver) runs on core 0; the load generator
is pinned to core 1, so requests/s is per client core. CPU per 1,000 requests is the load
processes' own, the fair figure when the target is the bottleneck.
"""

from __future__ import annotations

import subprocess
import sys

from bench.common import (
    CLIENT_CORE,
    ROOT,
    Section,
    free_port,
    have_wrk,
    mockserver,
    nginx,
    pinned,
    taskset,
    wrk,
)
from bench.runner import closed, harness_run

MODELS = [
    ("sync", 'model = "sync"'),
    ("thread", 'model = "thread"'),
    ("asyncio-aiohttp", 'model = "asyncio"'),
    ("asyncio-fast", 'model = "asyncio"\nengine = "fast"'),
    ("uvloop-aiohttp", 'model = "uvloop"'),
    ("uvloop-fast", 'model = "uvloop"\nengine = "fast"'),
    ("locust", 'model = "locust"'),
    ("locust-http", 'model = "locust-http"'),
]
CONCURRENCY = 50


def bare_aiohttp_rps(url: str, seconds: float) -> float:
    out = subprocess.run(taskset(CLIENT_CORE) + [sys.executable,
                         str(ROOT / "bench" / "bare_aiohttp.py"), url + "/", str(CONCURRENCY),
                         str(seconds)], capture_output=True, text=True, timeout=seconds + 60)
    return float(out.stdout.strip())


def run(quick: bool) -> list[Section]:
    seconds = 3 if quick else 10
    port = free_port()
    with nginx(port) as proc:
        if proc is not None:
            return measure(f"http://127.0.0.1:{port}", "nginx", seconds, 2 if quick else 3)
    port = free_port()
    with pinned(mockserver(port), port):
        return measure(f"http://127.0.0.1:{port}", "mockserver", seconds, 2 if quick else 3)


def measure(url: str, target: str, seconds: float, rounds: int = 3) -> list[Section]:
    rows: dict[str, tuple[float, float]] = {}
    # the fast engine and wrk alternate, `rounds` times each, and each side's best round is
    # its figure: a neighbour's burst during one run must not flatter either side
    fast_runs: list[tuple[float, float]] = []
    wrk_runs: list[tuple[float, float]] = []
    fast_model = dict(MODELS)["uvloop-fast"]
    for _ in range(rounds):
        if have_wrk():
            w = wrk(url + "/", CONCURRENCY, seconds)
            wrk_runs.append((w.rps, w.cpu_ms_per_1k))
        result = harness_run(closed(fast_model, CONCURRENCY, seconds), target=url)
        fast_runs.append((float(result.agg()["rps"]), result.cpu_ms_per_1k("uvloop-fast")))
    for label, model in MODELS:
        if label == "uvloop-fast":
            rows[label] = max(fast_runs)
            continue
        result = harness_run(closed(model, CONCURRENCY, seconds), target=url)
        rows[label] = (float(result.agg()["rps"]), result.cpu_ms_per_1k(label))
    bare = bare_aiohttp_rps(url, seconds)
    wrk_rps, wrk_cpu = max(wrk_runs, default=(None, None))
    table = ["| load generator | requests/s (one core) | client CPU ms / 1k requests |",
             "|---|---:|---:|"]
    table += [f"| {name} | {rps:,.0f} | {cpu:.1f} |" for name, (rps, cpu) in rows.items()]
    table.append(f"| bare aiohttp loop (reference) | {bare:,.0f} | |")
    fast, aio = rows["uvloop-fast"][0], rows["asyncio-aiohttp"][0]
    loc = rows["locust"][0]
    goals = [(f"fast engine >= 100k requests/s on one core ({fast:,.0f})", fast >= 100_000),
             (f"fast engine >= 12x Locust FastHttpUser ({fast / loc:.1f}x)", fast >= 12 * loc),
             (f"aiohttp engine within 10% of a bare aiohttp loop ({aio / bare:.2f}x)",
              aio >= 0.9 * bare)]
    line = (f"load generation vs {target}: uvloop-fast / Locust FastHttpUser = "
            f"{fast / loc:.1f}x, asyncio-aiohttp / bare aiohttp = {aio / bare:.2f}x")
    if wrk_rps:
        fast_cpu = rows["uvloop-fast"][1]
        table.append(f"| wrk (reference, C; best of {len(wrk_runs)} rounds alternating with "
                     f"uvloop-fast: {', '.join(f'{r:,.0f}' for r, _ in wrk_runs)}) | "
                     f"{wrk_rps:,.0f} | {wrk_cpu:.1f} |")
        goals.append((f"fast engine >= 0.9x wrk ({fast / wrk_rps:.2f}x; rounds "
                      f"{', '.join(f'{r:,.0f}' for r, _ in fast_runs)})",
                      fast >= 0.9 * wrk_rps))
        goals.append((f"fast engine client CPU per request within 1.3x of wrk's "
                      f"({fast_cpu / wrk_cpu:.2f}x)", fast_cpu <= 1.3 * wrk_cpu))
        line += f", uvloop-fast / wrk = {fast / wrk_rps:.2f}x"
    closed_section = Section(
        f"Load generation per core (against {target}, {CONCURRENCY} connections)",
        line, table, goals,
        notes="Each model runs through `harness run` (coordinator, worker and load process "
              "all on the client core); client CPU is the load processes' own (wrk's: its "
              "process's). The goal of 12x Locust is FastHttpUser through `harness run`.")
    return [closed_section, open_model(url, target, fast, seconds)]


def open_model(url: str, target: str, closed_max: float, seconds: float) -> Section:
    """The fast engine's open model at 80% of what its closed model reached: the rate it
    achieved against the schedule's, and its late sends (over 1 ms past their time)."""
    rate = round(0.8 * closed_max, -2)
    text = (f'[run]\nduration = "{seconds}s"\nwarmup = "1s"\nworkers = 1\n'
            f'[load]\nmode = "open"\nrate = {rate}\nconcurrency = 200\n'
            f'[[requests]]\nname = "get"\npath = "/"\n[[models]]\n'
            f'{dict(MODELS)["uvloop-fast"]}\n')
    result = harness_run(text, target=url)
    model = result.meta["models"]["uvloop-fast"]
    achieved = float(result.agg()["rps"])
    late = model["late"] / max(model["requests_sent"], 1)
    table = ["| target req/s | achieved | achieved / target | late sends (> 1 ms) | p99 ms |",
             "|---:|---:|---:|---:|---:|",
             f"| {rate:,.0f} | {achieved:,.0f} | {achieved / rate:.3f} | {100 * late:.2f}% | "
             f"{float(result.agg()['p99_ms']):.2f} |"]
    goals = [(f"achieved within 1% of target ({achieved / rate:.3f})",
              abs(achieved / rate - 1) <= 0.01),
             (f"late sends under 1% ({100 * late:.2f}%)", late < 0.01)]
    return Section(f"Open model at 80% of the closed model's rate (fast engine, {target})",
                   f"open model: {achieved / rate:.3f} of {rate:,.0f} req/s, "
                   f"{100 * late:.2f}% late", table, goals,
                   notes="200 users, one timer source for all (clients/chained.py); latency "
                         "is timed from each send's intended time.")
