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
            return [measure(f"http://127.0.0.1:{port}", "nginx", seconds)]
    port = free_port()
    with pinned(mockserver(port), port):
        return [measure(f"http://127.0.0.1:{port}", "mockserver", seconds)]


def measure(url: str, target: str, seconds: float) -> Section:
    rows: dict[str, tuple[float, float]] = {}
    # wrk runs before and after the models and the better run is the reference: a
    # neighbour's burst during one wrk run must not flatter the ratio against it.
    wrk_runs = [wrk(url + "/", CONCURRENCY, seconds).rps] if have_wrk() else []
    for label, model in MODELS:
        result = harness_run(closed(model, CONCURRENCY, seconds), target=url)
        rows[label] = (float(result.agg()["rps"]), result.cpu_ms_per_1k(label))
    bare = bare_aiohttp_rps(url, seconds)
    if wrk_runs:
        wrk_runs.append(wrk(url + "/", CONCURRENCY, seconds).rps)
    wrk_rps = max(wrk_runs, default=None)
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
        table.append(f"| wrk (reference, C; better of runs before and after: "
                     f"{' and '.join(f'{r:,.0f}' for r in wrk_runs)}) | {wrk_rps:,.0f} | |")
        goals.append((f"fast engine >= 0.5x wrk ({fast / wrk_rps:.2f}x)", fast >= 0.5 * wrk_rps))
        line += f", uvloop-fast / wrk = {fast / wrk_rps:.2f}x"
    return Section(f"Load generation per core (against {target}, {CONCURRENCY} connections)",
                   line, table, goals,
                   notes="Each model runs through `harness run` (coordinator, worker and load "
                         "process all on the client core).")
