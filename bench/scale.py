"""Coordinator scale: 10 to 5,000 simulated workers, each sending one STATS a second with
20 request names (harness/control/simulate.py); the coordinator's CPU while the run lasts,
its memory, and how long it takes after the last DONE to close every second and say BYE
(how far behind real time its interval closing fell). Beside it: where Locust's master
stops (locust#3142: one core saturated at about 1,279 workers)."""

from __future__ import annotations

import resource
import tempfile
from pathlib import Path

from bench.common import BIN, Section
from harness.control.simulate import SimResult, against_coordinator

NAMES = 20
LOCUST_WALL = 1279   # workers at which Locust's master saturates one core (locust#3142)


def _nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def simulated(workers: int, seconds: int) -> SimResult | None:
    """The simulation's figures, or None when the coordinator's run failed (its exit code
    is not 0: e.g. workers marked lost because heartbeats went unanswered)."""
    with tempfile.TemporaryDirectory() as tmp:
        result, _, code = against_coordinator(workers, seconds, Path(tmp), str(BIN / "harness"),
                                              names=NAMES, keep_truth=False)
        return result if code == 0 else None


def run(quick: bool) -> list[Section]:
    _nofile()
    seconds = 8 if quick else 30
    counts = (10, 200, 1000, 5000)
    rows = {n: simulated(n, seconds) for n in counts}
    table = ["| simulated workers | cells / s | coordinator CPU (% of one core) | RSS MB "
             "(quarter in -> end) | last DONE -> BYE (s) |", "|---:|---:|---:|---:|---:|"]
    for n, r in rows.items():
        table.append(f"| {n:,} | {n * NAMES:,} | {r.cpu_pct:.1f}% | {r.rss_start_mb:.0f} -> "
                     f"{r.rss_end_mb:.0f} | {r.end_of_run_s:.1f} |" if r is not None else
                     f"| {n:,} | {n * NAMES:,} | the run failed (workers lost) | | |")
    table.append(f"| Locust master (locust#3142) | | 100% at ~{LOCUST_WALL:,} workers | | |")

    def pct(n: int) -> str:
        r = rows[n]
        return f"{r.cpu_pct:.1f}%" if r is not None else "failed"
    thousand, five = rows[1000], rows[5000]
    goals = [(f"1,000 workers x {NAMES} names under 25% of one core ({pct(1000)})",
              thousand is not None and thousand.cpu_pct < 25.0),
             (f"5,000 workers x {NAMES} names under 100% of one core ({pct(5000)})",
              five is not None and five.cpu_pct < 100.0),
             ("end of run under 10 s at 5,000 workers "
              f"({f'{five.end_of_run_s:.1f} s' if five is not None else 'failed'})",
              five is not None and five.end_of_run_s < 10.0)]
    return [Section(f"Coordinator scale (simulated workers, {NAMES} request names, "
                    "1 STATS/s each)",
                    f"scale: coordinator CPU at 1,000 workers = {pct(1000)}, "
                    f"at 5,000 = {pct(5000)} of one core",
                    table, goals,
                    notes="Simulated workers speak the real protocol from one process (the "
                          "bench's own); the coordinator is a real `harness coordinator`. "
                          "CPU is the coordinator's over the seconds STATS were sent; when "
                          "it falls behind, the backlog shows as a longer last DONE -> BYE. "
                          "The merge is checked exact in tests/integration/test_scale.py; "
                          "memory over a simulated hour is the Long and wide runs section.")]
