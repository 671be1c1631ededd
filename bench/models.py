"""Load generation per core: every model and engine driving one target, side by side.

The target (nginx when installed, else the mockserver) runs on core 0; the whole harness
(coordinator, worker, load process) is pinned to core 1, so requests/s is per client core.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from bench.common import (
    BIN,
    CLIENT_CORE,
    ROOT,
    Section,
    free_port,
    mockserver,
    nginx,
    pinned,
    taskset,
)

MODELS = [
    ("sync", 'model = "sync"'),
    ("thread", 'model = "thread"'),
    ("asyncio-aiohttp", 'model = "asyncio"'),
    ("asyncio-fast", 'model = "asyncio"\nengine = "fast"'),
    ("uvloop-aiohttp", 'model = "uvloop"'),
    ("uvloop-fast", 'model = "uvloop"\nengine = "fast"'),
]
CONCURRENCY = 50


def harness_rps(url: str, model: str, seconds: float) -> tuple[float, float]:
    """Requests/s and client CPU-seconds per 1,000 requests of one model run."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.toml"
        path.write_text(f'[run]\nduration = "{seconds}s"\nwarmup = "1s"\nworkers = 1\n'
                        f"[load]\nconcurrency = {CONCURRENCY}\n"
                        '[[requests]]\nname = "get"\npath = "/"\n'
                        f"[[models]]\n{model}\n")
        proc = subprocess.run(taskset(CLIENT_CORE) + [str(BIN / "harness"), "run", str(path),
                              "--target", url, "--out", tmp, "--quiet"],
                              capture_output=True, text=True, timeout=seconds + 120)
        run_dir = Path(proc.stdout.strip().splitlines()[-1])
        row = pd.read_csv(run_dir / "summary.csv").query("name == 'Aggregated'").iloc[0]
        cpu_s = row["cpu_pct"] / 100 * (row["duration_s"] + 1.0)
        sent = max(int(row["sent"]), 1)
        return float(row["rps"]), 1000 * cpu_s / sent


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
    rows = {name: harness_rps(url, model, seconds) for name, model in MODELS}
    bare = bare_aiohttp_rps(url, seconds)
    table = ["| model | requests/s (one core) | client CPU ms / 1k requests |",
             "|---|---:|---:|"]
    table += [f"| {name} | {rps:,.0f} | {cpu:.1f} |" for name, (rps, cpu) in rows.items()]
    table.append(f"| bare aiohttp loop (reference) | {bare:,.0f} | |")
    fast = rows["uvloop-fast"][0]
    aio = rows["asyncio-aiohttp"][0]
    goals = [(f"fast engine >= 100k requests/s on one core ({fast:,.0f})", fast >= 100_000),
             (f"aiohttp engine within 10% of a bare aiohttp loop ({aio / bare:.2f}x)",
              aio >= 0.9 * bare)]
    line = (f"models vs {target}: uvloop-fast {fast:,.0f} req/s, asyncio-aiohttp / bare "
            f"aiohttp = {aio / bare:.2f}x, uvloop-fast / thread = "
            f"{fast / rows['thread'][0]:.1f}x")
    return Section(f"Load generation per core (against {target}, concurrency {CONCURRENCY})",
                   line, table, goals,
                   notes="The whole harness (coordinator, worker, load process) shares the "
                         "client core; CPU per 1k requests is the load process's.")
