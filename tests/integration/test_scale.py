"""Coordinator at scale, simulated: many workers' STATS merge exactly (equal to merging the
same histograms offline)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hdrh.histogram import HdrHistogram

from harness.simulate import simulate
from tests.conftest import HARNESS
from tests.integration.test_distributed import free_port

SCENARIO = """
[run]
duration = "{seconds}s"
[load]
concurrency = 1
[[requests]]
name = "home"
path = "/"
[[requests]]
name = "api"
path = "/api"
[[requests]]
name = "static"
path = "/static"
[[models]]
model = "asyncio"
"""


def counts(hist: HdrHistogram) -> list[tuple[int, int]]:
    return [(v.value_iterated_to, v.count_at_value_iterated_to)
            for v in hist.get_recorded_iterator()]


def run_simulation(tmp_path: Path, workers: int, seconds: int):
    path = tmp_path / "sim.toml"
    path.write_text(SCENARIO.format(seconds=seconds))
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    # The target is never contacted: simulated workers send no load.
    coord = subprocess.Popen([HARNESS, "coordinator", str(path), "--bind", endpoint,
                              "--expect-workers", str(workers), "--target",
                              "http://127.0.0.1:9", "--out", str(tmp_path), "--quiet"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    result = simulate(endpoint, workers, seconds, coordinator_pid=coord.pid)
    out, err = coord.communicate(timeout=120)
    assert coord.returncode == 0, err
    return result, Path(out.strip().splitlines()[-1])


@pytest.mark.parametrize("workers", [10, 50])
def test_merge_is_exact(tmp_path, workers):
    seconds = 3
    result, run_dir = run_simulation(tmp_path, workers, seconds)
    assert result.stats_sent == workers * seconds
    frame = pd.read_csv(run_dir / "histograms" / "asyncio-aiohttp.csv")
    import base64
    merged = {(int(r.second), r.name): HdrHistogram.decode(base64.b64decode(r.hist))
              for r in frame.itertuples()}
    assert set(merged) == set(result.truth)
    for key, truth in result.truth.items():
        assert counts(merged[key]) == counts(truth.hist), key
    errors = pd.read_csv(run_dir / "errors.csv")
    assert errors["count"].sum() == sum(sum(c.errors.values()) for c in result.truth.values())
    summary = pd.read_csv(run_dir / "summary.csv")
    total = sum(c.hist.get_total_count() for c in result.truth.values())
    assert summary.query("name == 'Aggregated'")["requests"].iloc[0] == total
    print(f"{workers} workers: coordinator CPU {result.cpu_pct:.1f}% of one core",
          file=sys.stderr)
