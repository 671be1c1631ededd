"""Auto-stop: `[thresholds] abort_after` stops a model once a threshold has been crossed
in every second for that long -- a fault that begins mid-run (the mock's admin API turns
every answer into a 500 after 3 s) stops the model within abort_after and a second or two
of sink delay, not at the end of its 20 s; every file is written and the run exits 99."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd

from tests.conftest import HARNESS, write_scenario

AUTOSTOP = """
[run]
duration = "20s"
workers = 1
[load]
mode = "open"
rate = 200
concurrency = 20
[[requests]]
name = "r"
path = "/"
[[models]]
model = "uvloop"
engine = "fast"
[thresholds]
error_rate = "< 0.01"
abort_after = "2s"
"""


def test_a_fault_mid_run_stops_the_model_early_with_exit_99(tmp_path, mock):
    path = write_scenario(tmp_path / "autostop.toml", AUTOSTOP)
    proc = subprocess.Popen([HARNESS, "run", str(path), "--target", mock.url, "--out",
                             str(tmp_path / "out"), "--quiet"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    started = time.monotonic()

    def fault_after_3s() -> None:
        time.sleep(3.5)   # the run's own start (workers, START) takes about half a second
        mock.get_json("/_mock/config", "PUT", json.dumps({"default": {"status": 500}}).encode())
    threading.Thread(target=fault_after_3s, daemon=True).start()
    out, err = proc.communicate(timeout=120)
    took = time.monotonic() - started
    assert proc.returncode == 99, err
    run_dir = Path(out.strip().splitlines()[-1])
    meta = json.loads((run_dir / "meta.json").read_text())
    assert "uvloop-fast" in meta["auto_stopped"], meta.get("auto_stopped")
    assert "error_rate < 0.01" in meta["auto_stopped"]["uvloop-fast"]
    assert any("stopped early" in line for line in meta["thresholds_crossed"])
    agg = pd.read_csv(run_dir / "summary.csv").query("name == 'Aggregated'").iloc[0]
    series = pd.read_csv(run_dir / "timeseries.csv").query("name == 'Aggregated'")
    faulty = series[series["failures"] > 0.01 * series["requests"]]["second"]
    assert len(faulty), series
    # stopped within abort_after (2 s) of the fault's first second, plus the second the
    # sink takes to close a second with every worker's cells and the stop's own round trip
    assert agg["duration_s"] <= faulty.min() + 2 + 2, (agg["duration_s"], faulty.min())
    assert agg["duration_s"] < 10 and took < 15, (agg["duration_s"], took)
    for name in ("timeseries.csv", "errors.csv", "junit.xml", "report.html"):
        assert (run_dir / name).stat().st_size > 0, name
    assert not meta["partial"]
    # what was sent is what the mock counted: stopped, not lost
    assert meta["requests_sent"] == mock.get_json("/_mock/stats")[1]["requests_total"]
