"""`harness report RUN_DIR` on a run that never finished (its coordinator was killed, the
disk filled): every result file rebuilt from the journal, through the same interval
sink and the same verdict, thresholds and report as a finished run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.capacity.drive import CapacityRunner
from harness.control.journal import Journal, read_journal, read_records
from harness.control.messages import check_cells
from harness.control.runstate import RECORDS, RunState, record, well_formed
from harness.core.outcome import RunOutcome
from harness.errors import ReportError
from harness.reports.intervals import IntervalSink
from harness.reports.results import model_totals
from harness.reports.writers import remove_written
from harness.run import CompletedRun, finish
from harness.scenario import Scenario, parse_scenario


def unfinished(run_dir: Path) -> bool:
    """A run directory whose run never wrote its results (meta.json still says running)."""
    try:
        meta = json.loads((run_dir / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("state") == "running" and (run_dir / "journal").is_dir()


def recover(run_dir: Path) -> CompletedRun:
    meta = json.loads((run_dir / "meta.json").read_text())
    try:
        scenario = parse_scenario(meta["scenario"]["raw"], meta["scenario"]["source"])
        reading = read_journal(run_dir)
    except (OSError, KeyError, ValueError) as exc:
        raise ReportError(f"{run_dir}: cannot recover: {exc}") from None
    remove_written(run_dir)   # every file a writer or the sink makes, written anew
    outcome = replay(reading.records, IntervalSink(run_dir, scenario))
    _searched(outcome, scenario)
    done = finish(scenario, run_dir, outcome, str(meta.get("target_url")),
                  bool(meta.get("embedded_mockserver")), None, recovered=True)
    lines = [f"recovered {len(reading.records)} journal records"
             + (f" ({reading.skipped_bytes} torn bytes at the end skipped)"
                if reading.skipped_bytes else "")]
    for result in outcome.models:
        t = model_totals(result, scenario)
        requests = sum(c.hist.get_total_count() for c in result.by_name.values())
        lines.append(f"recovered {result.label}: {t.measured_s:.0f} s measured, "
                     f"{requests} requests ({t.sent} sent)")
    return CompletedRun(done.run_dir, done.ending, lines + done.lines)


def _searched(outcome: RunOutcome, scenario: Scenario) -> None:
    """A capacity run's searches, rebuilt from the steps the journal holds (judged as
    the live run judged them), so capacity.csv and meta.json's answers come back too."""
    if scenario.capacity is not None:
        runner = CapacityRunner(scenario)
        runner.replay(outcome.models)
        outcome.capacity = runner.found


def add_journals(run_dir: Path, files: list[Path]) -> CompletedRun:
    """`harness report RUN_DIR --add WORKER_JOURNAL...`: what a worker measured and the
    coordinator never received (it was cut off, or lost for good) merged into the run,
    exactly: its STATS the run's journal does not hold (by worker and sequence number)
    and its DONE are appended to the run's journal, and every result file is rebuilt
    from it, each cell in its own second. Adding the same journal twice adds nothing."""
    try:
        meta = json.loads((run_dir / "meta.json").read_text())
        scenario = parse_scenario(meta["scenario"]["raw"], meta["scenario"]["source"])
        reading = read_journal(run_dir)
    except (OSError, KeyError, ValueError) as exc:
        raise ReportError(f"{run_dir}: not a run directory with a journal ({exc})") from None
    have = {(r.get("model"), r.get("worker"), r.get("seq")) for r in reading.records
            if r.get("k") == "stats"}
    done = {(r.get("model"), r.get("worker")) for r in reading.records if r.get("k") == "done"}
    adding: list[dict[str, Any]] = []
    lines = []
    for path in files:
        try:
            records = read_records(path).records
        except OSError as exc:
            raise ReportError(f"--add {path}: cannot read: {exc.strerror or exc}") from None
        join = records[0] if records and records[0].get("k") == "join" else None
        if join is None:
            raise ReportError(f"--add {path}: not a worker journal (harness worker --journal)")
        if join.get("run") != run_dir.name:
            raise ReportError(f"--add {path}: a journal of run {str(join.get('run'))[:80]!r}, "
                              f"not of {run_dir.name!r}")
        try:
            new = [r for r in records[1:] if _missing(r, have, done)]
            for r in new:
                if not well_formed(r):
                    raise ValueError(f"a {str(r.get('k'))[:20]!r} record without its fields")
                if r["k"] == "stats":
                    check_cells(r["cells"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ReportError(f"--add {path}: a damaged record ({exc})") from None
        for r in new:
            have.add((r["model"], r["worker"], r.get("seq")))
            if r["k"] == "done":
                done.add((r["model"], r["worker"]))
        adding += new
        cells = sum(len(r["cells"]) for r in new if r["k"] == "stats")
        lines.append(f"added from {path}: {cells} cells the coordinator never received"
                     + (f", {sum(1 for r in new if r['k'] == 'done')} DONE" if new else ""))
    if adding:
        journal = Journal(run_dir)
        for r in adding:
            journal.append_record(record(r["k"], **{k: r[k] for k in RECORDS[r["k"]]}))
        journal.close()
        if journal.error is not None:
            raise ReportError(f"{run_dir}: cannot append to the journal: {journal.error}")
    remove_written(run_dir)   # every file a writer or the sink makes, written anew
    outcome = replay(read_journal(run_dir).records, IntervalSink(run_dir, scenario))
    _searched(outcome, scenario)
    outcome.recovered = bool(meta.get("recovered"))
    done_run = finish(scenario, run_dir, outcome, str(meta.get("target_url")),
                      bool(meta.get("embedded_mockserver")), meta.get("mockserver_stats"),
                      recovered=bool(meta.get("recovered")))
    return CompletedRun(done_run.run_dir, done_run.ending, lines + done_run.lines)


def _missing(r: dict[str, Any], have: set[Any], done: set[Any]) -> bool:
    if r.get("k") == "stats":
        return (r["model"], r["worker"], r["seq"]) not in have
    if r.get("k") == "done":
        return (r["model"], r["worker"]) not in done
    return False


def replay(records: list[dict[str, Any]], sink: IntervalSink) -> RunOutcome:
    """The coordinator's view, rebuilt record by record through the coordinator's own
    state change (control.runstate.RunState.apply). A record that is not of a declared
    kind with its fields (a newer version's, a damaged one) is skipped."""
    state = RunState()
    for r in records:
        if well_formed(r):
            state.apply(r)
    ordered = state.ordered_models()
    for result in ordered:
        sink.finish(result)
    sink.close()
    return RunOutcome(ordered, state.ordered_workers(), 0, state.refused,
                      interrupted=False, recovered=True)
