"""Coordinator at scale, simulated: many workers' STATS merge exactly (equal to merging the
same histograms offline)."""

from __future__ import annotations

import base64
import sys

import pandas as pd
import pytest
from hdrh.histogram import HdrHistogram

from harness.control.simulate import against_coordinator
from tests.conftest import HARNESS


def counts(hist: HdrHistogram) -> list[tuple[int, int]]:
    return [(v.value_iterated_to, v.count_at_value_iterated_to)
            for v in hist.get_recorded_iterator()]


@pytest.mark.parametrize("workers", [10, 50])
def test_merge_is_exact(tmp_path, workers):
    seconds = 3
    result, run_dir, code = against_coordinator(workers, seconds, tmp_path, HARNESS)
    assert code == 0
    assert result.stats_sent == workers * seconds
    frame = pd.read_csv(run_dir / "histograms" / "asyncio-aiohttp.csv")
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
