"""The asyncio models hold 10,000 concurrent connections (RLIMIT_NOFILE raised as needed)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import load_meta, run_harness, start_mockserver


@pytest.mark.slow
@pytest.mark.parametrize("model", ['model = "uvloop"\nengine = "fast"', 'model = "asyncio"'])
def test_ten_thousand_connections(tmp_path, model):
    mock = start_mockserver()
    try:
        path = tmp_path / "many.toml"
        # Every user holds its connection through a 3 s response: 10,000 open at once.
        path.write_text('[run]\nduration = "8s"\ntimeout = "30s"\nworkers = 1\n'
                        "[load]\nconcurrency = 10000\n"
                        '[[requests]]\nname = "slow"\npath = "/delay/2000"\n'
                        f"[[models]]\n{model}\n")
        proc = run_harness("run", str(path), "--target", mock.url, "--out", str(tmp_path),
                           "--quiet", timeout=180)
        assert proc.returncode == 0, proc.stderr
        run_dir = proc.stdout.strip()
        stats = mock.stats()
        assert stats["connections_total"] >= 10000
        assert load_meta(run_dir)["requests_sent"] == stats["requests_total"]
        summary = pd.read_csv(Path(run_dir) / "summary.csv")
        agg = summary[summary["name"] == "Aggregated"].iloc[0]
        assert agg["failures"] == 0 and agg["requests"] >= 10000
    finally:
        mock.stop()
