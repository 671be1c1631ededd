"""loadharness: distributed HTTP load testing with honest numbers.

The public surface, for embedding a run in your own Python:

    from harness import load_scenario, execute, HarnessError
    scenario = load_scenario("scenarios/quickstart.toml", ["run.duration=2s"])
    done = execute(scenario, Path("results"))      # a CompletedRun: run_dir, ending, lines

`execute` is imported on first use: a worker's load processes import this package too, and
must not pay for pandas and the web server.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from harness.errors import HarnessError, RunError, ScenarioError, UsageError
from harness.scenario import Scenario, load_scenario

try:
    __version__ = metadata.version("loadharness")
except metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["HarnessError", "RunError", "Scenario", "ScenarioError", "UsageError",
           "__version__", "execute", "load_scenario"]


def __getattr__(name: str) -> Any:
    if name == "execute":
        from harness.run import execute
        return execute
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
