"""`harness run` and `harness coordinator`: one path for local and multi-host runs.

A local run is a coordinator plus N worker processes on this machine talking ZeroMQ over
loopback TCP: exactly what a multi-host run does, only the workers are started for you.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness import results, thresholds
from harness.coordinator import Coordinator, RunOutcome
from harness.embedded import EmbeddedMock
from harness.progress import Progress
from harness.report import build_report
from harness.scenario import Scenario
from harness.verdict import decide, format_verdict

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL, EXIT_THRESHOLDS = 0, 1, 2, 3, 99


@dataclass
class RunReport:
    run_dir: Path
    exit_code: int
    lines: list[str]


def start_local_workers(endpoint: str, n: int) -> list[subprocess.Popen[bytes]]:
    # New sessions: Ctrl-C reaches the coordinator only, which then ABORTs them cleanly.
    return [subprocess.Popen([sys.executable, "-m", "harness", "worker", "--connect", endpoint,
                              "--name", f"local-{i}"], start_new_session=True)
            for i in range(n)]


def stop_workers(procs: list[subprocess.Popen[bytes]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def execute(scenario: Scenario, out: Path, *, target: str | None, workers: int | None,
            bind: str = "tcp://127.0.0.1:0", local_workers: bool = True, quiet: bool = False,
            coordinator_kwargs: dict | None = None, wait_workers: float = 60.0) -> RunReport:
    url = target or scenario.target_url
    mock = None
    if url is None:
        mock = EmbeddedMock(scenario.seed)
        if scenario.mock:
            mock.configure(scenario.mock)
        mock.reset()
        url = mock.url
    try:
        outcome = _coordinate(scenario, url, bind, workers or scenario.workers, quiet,
                              local_workers, coordinator_kwargs, wait_workers)
        mock_stats = mock.stats() if mock else None
    finally:
        if mock:
            mock.stop()  # also when the coordinator could not even bind
    return finish(scenario, out, outcome, url, mock is not None, mock_stats)


def _coordinate(scenario: Scenario, url: str, bind: str, n: int, quiet: bool,
                local_workers: bool, coordinator_kwargs: dict | None,
                wait_workers: float) -> RunOutcome:
    progress = Progress(quiet)
    procs: list[subprocess.Popen[bytes]] = []
    coordinator: Coordinator | None = None
    try:
        coordinator = Coordinator(scenario, url, bind, n, progress,
                                  **(coordinator_kwargs or {}))
        if local_workers:
            procs = start_local_workers(coordinator.endpoint, n)
        elif not quiet:
            print(f"coordinator at {coordinator.endpoint}: waiting for {n} workers", flush=True)
        return coordinator.run(wait_workers)
    finally:
        progress.close()
        if coordinator is not None:  # None when it could not bind
            coordinator.close()
        stop_workers(procs)


def finish(scenario: Scenario, out: Path, outcome: RunOutcome, url: str, embedded: bool,
           mock_stats: dict | None) -> RunReport:
    run_dir = results.new_run_dir(out, scenario.name)
    summary = results.write_run(run_dir, scenario, outcome, url=url, embedded=embedded,
                                mock_stats=mock_stats, extra={})
    lines = []
    agg = summary[summary["name"] == "Aggregated"]
    for row in agg.itertuples():
        lines.append(f"{row.model}: {row.requests} requests, {row.rps:.0f} req/s, "
                     f"p50 {row.p50_ms:.2f} ms, p99 {row.p99_ms:.2f} ms, "
                     f"{row.failures} failures")
    verdict = decide(scenario, summary)
    crossed = thresholds.check(scenario, summary)
    meta_path = run_dir / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["thresholds_crossed"] = crossed
    if verdict is not None:
        lines.append(format_verdict(verdict))
        verdict.table.to_csv(run_dir / "verdict.csv", index=False)
        meta["verdict"] = lines[-1].splitlines()[-1]
        meta["verdict_agrees"] = verdict.agrees
    meta_path.write_text(json.dumps(meta, indent=2, default=str) + "\n")
    build_report(run_dir)
    for line in crossed:
        lines.append(f"threshold crossed: {line}")
    if outcome.partial:
        lost = ", ".join(f"{w.name} (during {w.lost_during})" for w in outcome.lost)
        why = "interrupted" if outcome.interrupted else f"lost workers: {lost}" if lost \
            else "a model was aborted"
        lines.append(f"partial run: {why}")
    failed = [e for m in outcome.models for e in m.errors]
    for e in failed:
        lines.append(f"worker error: {e}")
    code = EXIT_OK
    if crossed:
        code = EXIT_THRESHOLDS
    if outcome.partial:
        code = EXIT_PARTIAL
    if failed or not outcome.models:
        code = EXIT_FAILED
    return RunReport(run_dir, code, lines)
