"""Long and wide runs: what a run costs the coordinator after the load, and over time.

1. A real run: 50 request names, 250 requests/s, open model, against the embedded
   mockserver: time from the end of the load to the exit, and the coordinator's peak RSS
   (it was 232 s and 1.75 GB for 60 s before intervals were streamed).
2. Simulated workers (harness/control/simulate.py) at ten times the clock's speed feeding
   50 names x 10 workers: the coordinator's RSS growth per simulated hour (over the last
   three quarters: start-up allocations are not growth), its end-of-run time, and the
   journal's bytes per hour (with the 24-hour extrapolation for disk).
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import psutil

from bench.common import BIN, CLIENT_CORE, Section, taskset
from harness.control.journal import read_journal
from harness.control.simulate import against_coordinator

NAMES = 50
SPEED = 10.0   # simulated seconds per real second


def real_run(seconds: int) -> tuple[float, float]:
    """(seconds from the end of the load to the exit, peak coordinator RSS in MB)."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-wide-"))
    path = tmp / "wide.toml"
    path.write_text(f'[run]\nduration = "{seconds}s"\nworkers = 1\n'
                    '[load]\nmode = "open"\nrate = 250\nconcurrency = 50\n'
                    + "".join(f'[[requests]]\nname = "r{i}"\npath = "/n{i}"\n'
                              for i in range(NAMES))
                    + '[[models]]\nmodel = "uvloop"\nengine = "fast"\n')
    proc = subprocess.Popen(taskset(CLIENT_CORE) + [str(BIN / "harness"), "run", str(path),
                            "--out", str(tmp), "--quiet"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    coordinator = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, coordinator.memory_info().rss)
        except psutil.Error:
            break
        time.sleep(0.1)
    exited = time.time()
    out = proc.stdout.read() if proc.stdout else ""
    run_dir = Path(out.strip().splitlines()[-1])
    ends = [r["at"] for r in read_journal(run_dir).records if r.get("k") == "model_end"]
    return exited - ends[-1], peak / 2**20


def simulated(seconds: int, workers: int = 10) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        result, run_dir, code = against_coordinator(
            workers, seconds, Path(tmp), str(BIN / "harness"), names=NAMES, speed=SPEED,
            keep_truth=False)
        journal = (run_dir / "journal" / "events.bin").stat().st_size
    hours = seconds / 3600.0
    growth = (result.rss_end_mb - result.rss_start_mb) / (0.75 * hours)  # the last 3/4
    return {"rss_growth_mb_per_hour": growth,
            "rss_end_mb": result.rss_end_mb, "end_of_run_s": result.end_of_run_s,
            "journal_mb_per_hour": journal / 2**20 / hours, "exit": float(code)}


def run(quick: bool) -> list[Section]:
    seconds = 20 if quick else 60
    after_s, peak_mb = real_run(seconds)
    sim_seconds = 600 if quick else 3600
    sim = simulated(sim_seconds)
    table = ["| measurement | value | goal |", "|---|---:|---|",
             f"| {seconds} s, {NAMES} names, 250 req/s: end of load to exit | "
             f"{after_s:.1f} s | < 5 s (was 232 s for 60 s) |",
             f"| same: peak coordinator RSS | {peak_mb:.0f} MB | < 300 MB (was 1.75 GB) |",
             f"| simulated {sim_seconds // 60} min, {NAMES} names x 10 workers: RSS growth "
             f"per simulated hour | {sim['rss_growth_mb_per_hour']:.1f} MB | < 20 MB |",
             f"| same: coordinator end of run | {sim['end_of_run_s']:.1f} s | < 10 s |",
             f"| same: journal per hour (24 h) | {sim['journal_mb_per_hour']:.0f} MB "
             f"({24 * sim['journal_mb_per_hour'] / 1024:.1f} GB) | on disk, recoverable |"]
    goals = [(f"end of load to exit < 5 s ({after_s:.1f} s)", after_s < 5),
             (f"peak coordinator RSS < 300 MB ({peak_mb:.0f} MB)", peak_mb < 300),
             (f"RSS growth < 20 MB per simulated hour ({sim['rss_growth_mb_per_hour']:.1f})",
              sim["rss_growth_mb_per_hour"] < 20),
             (f"simulated end of run < 10 s ({sim['end_of_run_s']:.1f} s)",
              sim["end_of_run_s"] < 10)]
    return [Section("Long and wide runs",
                    f"long and wide: {after_s:.1f} s to exit, {peak_mb:.0f} MB peak, "
                    f"{sim['rss_growth_mb_per_hour']:.1f} MB/h growth", table, goals,
                    notes=f"The simulated workers send {SPEED:g} simulated seconds per real "
                          "second (an hour in six minutes); RSS is the coordinator "
                          "process's (psutil).")]
