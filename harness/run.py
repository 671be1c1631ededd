"""`harness run` and `harness coordinator`: one path for local and multi-host runs.

A local run is a coordinator plus N worker processes on this machine talking ZeroMQ over
loopback TCP: exactly what a multi-host run does, only the workers are started for you.
The run ends in a CompletedRun; cli.py turns its `ending` into an exit code.
"""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from harness.capacity.drive import CapacityRunner
from harness.control.coordinator import Coordinator
from harness.control.journal import Journal, iter_records
from harness.control.messages import LOST_AFTER_S, check_cells
from harness.core.names import AGGREGATED
from harness.core.outcome import ModelResult, RunOutcome
from harness.embedded import EmbeddedMock
from harness.errors import CoordinatorError, RunError
from harness.live.progress import Progress
from harness.reports import results, thresholds
from harness.reports.autostop import AutoStop
from harness.reports.intervals import IntervalSink
from harness.reports.verdict import decide, format_verdict
from harness.reports.writers import Judged, write_all
from harness.scenario import Scenario
from harness.stats import error_kind, is_flow

if TYPE_CHECKING:
    from harness.live.board import LiveBoard

T = TypeVar("T")


class Ending(Enum):
    """How a run ended, worst last: cli.py maps each to its exit code."""

    OK = "ok"
    THRESHOLDS = "thresholds crossed"
    PARTIAL = "partial"
    FAILED = "failed"


@dataclass
class CompletedRun:
    """A finished run: where its files are, what to print, how it ended."""

    run_dir: Path
    ending: Ending
    lines: list[str]
    invalid: tuple[str, ...] = ()   # models that measured their own client (--strict: 4)

    @property
    def problems(self) -> list[str]:
        """The lines that say why a run failed or cannot be trusted as it is: printed to
        stderr always, `--quiet` too (a script's log must say why it got exit 1)."""
        return [line for line in self.lines if line.startswith(PROBLEM_PREFIXES)]


PROBLEM_PREFIXES = ("run failed:", "worker error:", "threshold crossed:", "partial run:",
                    "warning:")


def start_local_workers(endpoint: str, n: int, journals: Path | None = None
                        ) -> list[subprocess.Popen[bytes]]:
    """`harness worker` processes on this machine, each keeping its own journal in
    `journals` (worker-local-I.bin). New sessions: Ctrl-C reaches the coordinator only,
    which then ABORTs them cleanly."""
    return [subprocess.Popen([sys.executable, "-m", "harness", "worker", "--connect", endpoint,
                              "--name", f"local-{i}",
                              *(["--journal", str(journals / f"worker-local-{i}.bin")]
                                if journals is not None else [])], start_new_session=True)
            for i in range(n)]


def stop_workers(procs: list[subprocess.Popen[bytes]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def execute(scenario: Scenario, out: Path, *, target: str | None = None,
            workers: int | None = None, bind: str = "tcp://127.0.0.1:0",
            local_workers: bool = True, quiet: bool = False,
            coordinator_kwargs: dict[str, Any] | None = None,
            wait_workers: float = 60.0, lost_after_s: float = LOST_AFTER_S,
            web: tuple[str, int, str | None] | None = None) -> CompletedRun:
    """Run a scenario to the end and write its results under `out`.

    Ctrl-C or SIGTERM during the load ends it early (a partial run, written); once the
    load is over, one is acknowledged and the results are written all the same. Workers
    are told BYE only after that, so none leaves while the coordinator still writes.

    `web` (host, port, token) serves the dashboard and /metrics while the run goes on;
    it is bound before anything else, so a taken port leaves nothing behind."""
    n = workers or scenario.workers
    board, server = None, None
    if web is not None:   # imported only here: a run without --web does not pay for them
        from harness.live.board import LiveBoard
        from harness.live.web import WebServer
        board = LiveBoard(scenario, n)
        server = WebServer(board, *web)
        print(f"dashboard: {server.start()}", flush=True)
    try:
        return _execute(scenario, out, target, n, bind, local_workers, quiet,
                        coordinator_kwargs, wait_workers, lost_after_s, board)
    finally:
        if server is not None:
            server.close()


def _execute(scenario: Scenario, out: Path, target: str | None, n: int, bind: str,
             local_workers: bool, quiet: bool, coordinator_kwargs: dict[str, Any] | None,
             wait_workers: float, lost_after_s: float, board: LiveBoard | None
             ) -> CompletedRun:
    run_dir = _made(lambda: results.new_run_dir(out, scenario.name), out)
    url = target or scenario.target_url
    mock = None
    if url is None:
        mock = EmbeddedMock(scenario.seed, tls=scenario.mock_tls)
        if scenario.mock:
            mock.configure(scenario.mock)
        mock.reset()
        url = mock.url
        if mock.cert_pem is not None:   # trusted, pinned: its certificate and no other
            scenario = dataclasses.replace(scenario, tls=dataclasses.replace(
                scenario.tls, ca_pem=mock.cert_pem, pinned=True))
    _made(lambda: results.write_meta(run_dir, scenario, url=url, embedded=mock is not None,
                                     state="running"), run_dir)
    if not quiet:
        print(f"run directory: {run_dir}", flush=True)
    terminal = Progress(quiet)
    progress: Any = terminal
    procs: list[subprocess.Popen[bytes]] = []
    coordinator: Coordinator | None = None
    journal = _made(lambda: Journal(run_dir), run_dir)
    sink = _made(lambda: IntervalSink(run_dir, scenario), run_dir)

    def journal_cells(model: int, seconds: set[int]
                      ) -> Iterator[tuple[int, str, dict[str, Any]]]:
        journal.flush()
        for r in iter_records(journal.path):
            if r.get("k") == "stats" and r.get("model") == model:
                yield from (c for c in check_cells(r["cells"]) if c[0] in seconds)
    sink.journal_cells = journal_cells
    if scenario.abort_after_s is not None:
        sink.listeners.append(AutoStop(scenario))
    if board is not None:
        sink.listeners.append(board)

        def both(result: ModelResult, elapsed: float, extra: dict[str, Any]) -> None:
            terminal(result, elapsed, extra)
            board.progress(result, elapsed, extra)
        progress = both
    # From here to the end a signal is acknowledged, never obeyed mid-write: the
    # coordinator's own handler takes over while the load runs (Ctrl-C ends the load).
    with _acknowledged_signals():
        try:
            try:
                coordinator = Coordinator(scenario, url, bind, n, progress, journal=journal,
                                          sink=sink, lost_after_s=lost_after_s,
                                          run_id=run_dir.name,
                                          stop=board.stop_requested if board else None,
                                          **(coordinator_kwargs or {}))
                if local_workers:
                    procs = start_local_workers(coordinator.endpoint, n, run_dir / "journal")
                elif not quiet:
                    print(f"coordinator at {coordinator.endpoint}: waiting for {n} workers",
                          flush=True)
                try:
                    runner = CapacityRunner(scenario, board.searched if board else None) \
                        if scenario.capacity else None
                    outcome = coordinator.run(wait_workers, runner)
                    if runner is not None:
                        outcome.capacity = runner.found
                except CoordinatorError as exc:
                    # the run never started: meta.json says so, with what the coordinator
                    # counted of the peers that did come (dropped, refused)
                    reason = str(exc)
                    _made(lambda: results.write_meta(
                        run_dir, scenario, url=url, embedded=mock is not None,
                        state="failed", reason=reason,
                        dropped_messages=coordinator.dropped,     # type: ignore[union-attr]
                        refused_workers=coordinator.refused), run_dir)  # type: ignore
                    raise
            finally:
                terminal.close()
            if board is not None:
                board.writing()
            mock_stats = mock.stats() if mock else None
            sink.close()
            journal.close()
            done = finish(scenario, run_dir, outcome, url, mock is not None, mock_stats,
                          problem=sink.error or journal.error)
            if board is not None:
                board.finished(str(run_dir), done.ending.value)
            return done
        finally:
            sink.close()
            journal.close()
            if coordinator is not None:  # None when it could not bind
                coordinator.bye()  # first: workers must never wait for a BYE that failed
                coordinator.close()
            if mock:
                mock.stop()  # also when the coordinator could not even bind
            stop_workers(procs)


_ACKNOWLEDGED: list[int] = []  # one line per process, however many signals come


@contextmanager
def _acknowledged_signals() -> Iterator[None]:
    """While results are written, a Ctrl-C or SIGTERM gets one line and changes nothing:
    a second Ctrl-C must not cost the run it was meant to end."""

    def acknowledge(signum: int, frame: Any) -> None:
        if not _ACKNOWLEDGED:
            _ACKNOWLEDGED.append(signum)
            print("harness: writing the results; they will be complete in a moment",
                  file=sys.stderr, flush=True)
    previous = {sig: signal.signal(sig, acknowledge) for sig in (signal.SIGINT,
                                                                  signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _made(make: Callable[[], T], where: Path) -> T:
    """`make()`, with an OSError (disk full, read-only, a name too long) turned into a
    RunError of one line naming the path: the journal, if any, stays recoverable."""
    try:
        return make()
    except OSError as exc:
        raise RunError(_write_problem(exc, where)) from None


def _write_problem(exc: OSError, where: Path) -> str:
    return (f"cannot write {exc.filename or where}: {exc.strerror or exc} "
            f"(what was measured is in {where}/journal: harness report {where})")


def finish(scenario: Scenario, run_dir: Path, outcome: RunOutcome, url: str, embedded: bool,
           mock_stats: dict[str, Any] | None, problem: OSError | None = None,
           recovered: bool = False) -> CompletedRun:
    """Judge the run (verdict, thresholds), write summary.csv and meta.json once, build the
    report, say how it ended. The per-second files were written as intervals closed."""
    if problem is not None:
        raise RunError(_write_problem(problem, run_dir))
    return _made(lambda: _finish(scenario, run_dir, outcome, url, embedded, mock_stats,
                                 recovered), run_dir)


def _finish(scenario: Scenario, run_dir: Path, outcome: RunOutcome, url: str, embedded: bool,
            mock_stats: dict[str, Any] | None, recovered: bool) -> CompletedRun:
    summary = results.summary_frame(outcome, scenario)
    lines = []
    agg = summary[summary["name"] == AGGREGATED]
    for row in agg.itertuples():
        lines.append(f"{row.model}: {row.requests} requests, {row.rps:.0f} req/s, "
                     f"p50 {row.p50_ms:.2f} ms, p99 {row.p99_ms:.2f} ms, "
                     f"{row.failures} failures")
    saturated = {r.label: results.model_totals(r, scenario) for r in outcome.models}
    saturated = {label: t for label, t in saturated.items() if t.client_saturated}
    # a capacity run is judged by its searches, not by comparing steps as models
    verdict = None if outcome.capacity else decide(scenario, summary,
                                                    saturated=set(saturated))
    crossed = thresholds.check(scenario, summary)
    # auto-stopped models crossed a threshold for abort_after, whatever their totals say
    crossed += [f"{r.label}: stopped early: {r.stop_requested}" for r in outcome.models
                if r.stop_requested]
    extra: dict[str, Any] = {"thresholds_crossed": crossed, "state": "done",
                             "recovered": recovered,
                             "auto_stopped": {r.label: r.stop_requested for r in outcome.models
                                              if r.stop_requested}}
    if outcome.capacity:
        ranked = sorted(outcome.capacity.values(),
                        key=lambda f: (f.capacity is None, -(f.capacity or 0)))
        lines += ["capacity: " + found.line() for found in ranked]
        extra["capacity"] = {label: found.to_dict() for label, found in
                             outcome.capacity.items()}
    if verdict is not None:
        lines.append(format_verdict(verdict))
        extra["verdict"] = lines[-1].splitlines()[-1]
        extra["verdict_agrees"] = verdict.agrees
    said = {label: results.saturation_text(label, t.saturated_s, t.sampled_s,
                                           t.saturated_by)
            for label, t in saturated.items()}
    write_all(Judged(run_dir, scenario, outcome, summary, verdict, said,
                     {"url": url, "embedded": embedded, "mock_stats": mock_stats,
                      "extra": extra}))
    for line in said.values():
        lines.append(f"warning: {line}")
    for line in crossed:
        lines.append(f"threshold crossed: {line}")
    if outcome.partial:
        lost = ", ".join(f"{w.name} (during {w.lost_during})" for w in outcome.lost)
        why = "interrupted" if outcome.interrupted else f"lost workers: {lost}" if lost \
            else "recovered from the journal of a run that never finished" \
            if outcome.recovered else "a model was aborted"
        lines.append(f"partial run: {why}")
    failed = [e for m in outcome.models for e in m.errors]
    for e in failed:
        lines.append(f"worker error: {e}")
    for result in outcome.models if not outcome.capacity else ():   # a step may fail whole
        completed = sum(c.hist.get_total_count() for n, c in result.by_name.items()
                        if not is_flow(n))
        kinds = error_kinds(result)
        if completed == sum(kinds.values()) and not outcome.interrupted:
            failed.append(result.label)
            lines.append(f"run failed: {result.label}: no request succeeded "
                         f"({_error_summary(kinds)})")
    ending = Ending.OK
    if crossed:
        ending = Ending.THRESHOLDS
    if outcome.partial:
        ending = Ending.PARTIAL
    if failed or not outcome.models:
        ending = Ending.FAILED
    return CompletedRun(run_dir, ending, lines, tuple(saturated))


def error_kinds(result: ModelResult) -> dict[str, int]:
    """A model's error kinds and counts, from its merged totals (statuses folded in)."""
    kinds: dict[str, int] = {}
    for name, cell in result.by_name.items():
        if is_flow(name):
            continue   # a flow's `aborted` repeats the failure of one of its steps
        for key, n in cell.errors.items():
            kind = error_kind(key)[0]
            kinds[kind] = kinds.get(kind, 0) + n
    return kinds


def _error_summary(kinds: dict[str, int]) -> str:
    if not kinds:
        return "no request completed"
    total = sum(kinds.values())
    return f"{total} failures: " + ", ".join(f"{k} {n}" for k, n in
                                             sorted(kinds.items(), key=lambda kv: -kv[1]))
