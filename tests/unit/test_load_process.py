"""A load process is ready only when it can send at once: its model and its transport's
library are imported before it says so. (Found in CI beside a CPU hog: a one-second run of
the process model sent nothing -- its children imported aiohttp after START, and the import
outlasted the run.) Real spawned processes; what they loaded is read from /proc."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.clients.process import ProcessModel
from harness.control.plan import make_job
from harness.scenario import load_scenario

SCENARIO = """
[run]
duration = "1s"
[load]
concurrency = 2
[[requests]]
name = "a"
path = "/"
[[models]]
model = "process"
processes = 2
sub_model = "asyncio"
"""


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc (Linux)")
def test_a_load_process_has_its_transport_loaded_before_it_says_ready(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO)
    scenario = load_scenario(path)
    job = make_job(scenario, scenario.models[0], "http://127.0.0.1:9", 0, 1)
    model = ProcessModel(job)
    try:
        deadline = time.monotonic() + 60
        while not model.ready():
            assert time.monotonic() < deadline, "the load processes never said ready"
            time.sleep(0.05)
        assert model.error is None
        for pid in model.pids():
            maps = Path(f"/proc/{pid}/maps").read_text()
            # aiohttp's compiled parser: loaded with the transport's module
            assert "/aiohttp/" in maps, f"load process {pid} said ready without aiohttp"
    finally:
        model.kill()
