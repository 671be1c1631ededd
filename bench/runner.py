"""Run a scenario through the real `harness run`, pinned to the client core, and read back
what it wrote: the benchmarks measure the product, not a stripped-down copy of it."""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.common import BIN, CLIENT_CORE, taskset


@dataclass
class RunResult:
    summary: pd.DataFrame
    meta: dict
    run_dir: Path

    def agg(self, model: str | None = None) -> pd.Series:
        rows = self.summary[self.summary["name"] == "Aggregated"]
        if model is not None:
            rows = rows[rows["model"] == model]
        return rows.iloc[0]

    def cpu_ms_per_1k(self, model: str) -> float:
        m = self.meta["models"][model]
        return 1000.0 * 1000.0 * m["cpu_s"] / max(m["requests_sent"], 1)


def harness_command(text: str, *, target: str | None = None, sets: tuple[str, ...] = (),
                    pin: bool = True, extra: tuple[str, ...] = ()) -> list[str]:
    """`harness run` of this scenario text (written to a fresh directory that also takes
    the results), pinned to the client core."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-run-"))
    path = tmp / "bench.toml"
    path.write_text(text)
    cmd = (taskset(CLIENT_CORE) if pin else []) + [str(BIN / "harness"), "run", str(path),
                                                   "--out", str(tmp), "--quiet", *extra]
    if target:
        cmd += ["--target", target]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def result_of(returncode: int, stdout: str, stderr: str) -> RunResult:
    """What a finished `harness run` wrote (its last stdout line is the run directory)."""
    if returncode not in (0, 99):
        raise RuntimeError(f"harness run failed ({returncode}): {stderr[-2000:]}")
    run_dir = Path(stdout.strip().splitlines()[-1])
    return RunResult(pd.read_csv(run_dir / "summary.csv"),
                     json.loads((run_dir / "meta.json").read_text()), run_dir)


def harness_run(text: str, *, target: str | None = None, sets: tuple[str, ...] = (),
                timeout: float = 600, pin: bool = True) -> RunResult:
    cmd = harness_command(text, target=target, sets=sets, pin=pin)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return result_of(proc.returncode, proc.stdout, proc.stderr)


def closed(model: str, concurrency: int, seconds: float, path: str = "/",
           warmup: float = 1.0) -> str:
    return (f'[run]\nduration = "{seconds}s"\nwarmup = "{warmup}s"\nworkers = 1\n'
            f"[load]\nconcurrency = {concurrency}\n"
            f'[[requests]]\nname = "get"\npath = "{path}"\n[[models]]\n{model}\n')
