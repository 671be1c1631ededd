"""Coordinator scale: 10, 50 and 200 simulated workers sending per-second STATS; the
coordinator's CPU while the run lasts (harness/control/simulate.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.common import BIN, Section
from harness.control.simulate import against_coordinator


def coordinator_cpu(workers: int, seconds: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        result, _, _ = against_coordinator(workers, seconds, Path(tmp), str(BIN / "harness"))
        return result.cpu_pct


def run(quick: bool) -> list[Section]:
    seconds = 5 if quick else 15
    rows = {n: coordinator_cpu(n, seconds) for n in (10, 50, 200)}
    table = ["| simulated workers | coordinator CPU (% of one core) |", "|---:|---:|"]
    table += [f"| {n} | {pct:.1f}% |" for n, pct in rows.items()]
    goals = [(f"200 workers cost the coordinator under 5% of one core ({rows[200]:.1f}%)",
              rows[200] < 5.0)]
    return [Section("Coordinator scale (simulated workers, 3 request names, 1 STATS/s each)",
                    f"scale: coordinator CPU at 200 workers = {rows[200]:.1f}% of one core",
                    table, goals,
                    notes="Simulated workers speak the real protocol from one process; the "
                          "merge is checked exact in tests/integration/test_scale.py.")]
