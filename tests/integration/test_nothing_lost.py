"""Nothing lost (issue 13): a run directory from the start, a journal a killed coordinator
is recovered from, signals, write errors, a frozen worker. Real processes, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from tests.conftest import HARNESS, Mock, load_meta, run_harness
from tests.integration.test_distributed import coordinator, free_port, worker, write

OPEN = """
[run]
duration = "{duration}"
[load]
mode = "open"
rate = {rate}
concurrency = 20
[[requests]]
name = "home"
path = "/"
[[models]]
model = "asyncio"
engine = "fast"
"""


def first_line_dir(proc: subprocess.Popen[str]) -> Path:
    """`run directory: PATH`, printed at the start."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("run directory: "), line
    return Path(line.split(": ", 1)[1].strip())


def test_killed_coordinator_is_recovered_from_its_journal(tmp_path, mock: Mock):
    """kill -9 of the coordinator 6 s into a 30 s run: the run directory is there, and
    `harness report` rebuilds every result file from the journal (exit 3, partial,
    recovered), every second up to 2 s before the kill included, and no more requests
    than the mockserver counted."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    path = write(tmp_path, OPEN.format(duration="30s", rate=200))
    coord = subprocess.Popen([HARNESS, "coordinator", str(path), "--bind", endpoint,
                              "--expect-workers", "1", "--target", mock.url, "--out",
                              str(tmp_path), "--wait-workers", "30"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_dir = first_line_dir(coord)
    w = worker(endpoint, "w0")
    deadline = time.monotonic() + 30
    while mock.stats()["requests_total"] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    started = time.monotonic()
    time.sleep(6)
    coord.send_signal(signal.SIGKILL)
    killed_after = time.monotonic() - started
    coord.wait(10)
    w.wait(20)
    assert load_meta(str(run_dir))["state"] == "running"
    proc = run_harness("report", str(run_dir))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "recovered asyncio-fast:" in proc.stdout
    meta = load_meta(str(run_dir))
    assert meta["partial"] is True and meta["recovered"] is True and meta["state"] == "done"
    ts = pd.read_csv(run_dir / "timeseries.csv")
    seconds = set(ts[ts["name"] == "Aggregated"]["second"])
    assert set(range(int(killed_after) - 2)) <= seconds, (seconds, killed_after)
    summary = pd.read_csv(run_dir / "summary.csv")
    recovered = int(summary[summary["name"] == "Aggregated"]["requests"].iloc[0])
    time.sleep(0.5)
    assert 0 < recovered <= mock.stats()["requests_total"]
    for name in ("errors.csv", "statuses.csv", "report.html", "histograms/asyncio-fast.csv"):
        assert (run_dir / name).exists(), name


@pytest.mark.parametrize("command", ["run", "coordinator"])
def test_sigterm_ends_a_run_like_ctrl_c(tmp_path, mock: Mock, command: str):
    path = write(tmp_path, OPEN.format(duration="30s", rate=100))
    if command == "run":
        proc = subprocess.Popen([HARNESS, "run", str(path), "--target", mock.url, "--out",
                                 str(tmp_path)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        workers = []
    else:
        endpoint = f"tcp://127.0.0.1:{free_port()}"
        proc = coordinator(path, endpoint, 1, mock, tmp_path)
        workers = [worker(endpoint, "w0")]
    time.sleep(5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    for w in workers:
        assert w.wait(30) == 0
    assert proc.returncode == 3, err
    run_dir = Path(out.strip().splitlines()[-1])
    meta = load_meta(str(run_dir))
    assert meta["partial"] and meta["interrupted"] and meta["state"] == "done"
    for name in ("summary.csv", "timeseries.csv", "errors.csv", "report.html"):
        assert (run_dir / name).exists(), name
    time.sleep(0.5)
    assert meta["requests_sent"] == mock.stats()["requests_total"]


def test_kill_9_of_harness_run_leaves_no_mockserver(tmp_path):
    path = write(tmp_path, OPEN.format(duration="30s", rate=50))
    proc = subprocess.Popen([HARNESS, "run", str(path), "--out", str(tmp_path), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    mocks: list[psutil.Process] = []
    while not mocks and time.monotonic() < deadline:
        time.sleep(0.2)
        mocks = [c for c in psutil.Process(proc.pid).children(recursive=True)
                 if "mockserver" in " ".join(c.cmdline())]
    assert mocks, "the embedded mockserver did not start"
    time.sleep(2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    gone, alive = psutil.wait_procs(mocks, timeout=10)
    assert not alive, [p.pid for p in alive]


def test_frozen_worker_stops_its_load_and_counts_reconcile(tmp_path, mock: Mock):
    """SIGSTOP of a worker for 3 s: its load processes notice the missing beats and stop
    sending within 3 heartbeats; after SIGCONT the run ends and what was sent equals what
    the mockserver counted."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    path = write(tmp_path, OPEN.format(duration="10s", rate=200))
    coord = coordinator(path, endpoint, 1, mock, tmp_path)
    w = worker(endpoint, "w0")
    deadline = time.monotonic() + 30
    while mock.stats()["requests_total"] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2)
    os.kill(w.pid, signal.SIGSTOP)
    time.sleep(2.5)  # 1.5 s to notice, then the load must have stopped
    before = mock.stats()["requests_total"]
    time.sleep(0.5)
    during = mock.stats()["requests_total"]
    os.kill(w.pid, signal.SIGCONT)
    out, err = coord.communicate(timeout=60)
    w.wait(30)
    assert during == before, (before, during)
    meta = load_meta(out.strip().splitlines()[-1])
    time.sleep(0.5)
    assert meta["requests_sent"] == mock.stats()["requests_total"]


def test_refused_without_keys_is_counted(tmp_path, mock: Mock):
    """A worker with no CURVE keys at a CURVE coordinator never gets past the handshake:
    it is counted in refused_workers all the same."""
    keys = tmp_path / "keys"
    assert run_harness("keys", str(keys)).returncode == 0
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    path = write(tmp_path, OPEN.format(duration="1s", rate=50))
    coord = coordinator(path, endpoint, 1, mock, tmp_path, "--curve-dir", str(keys))
    keyless = worker(endpoint, "nokeys", "--connect-timeout", "3")
    good = worker(endpoint, "w0", "--curve-dir", str(keys))
    out, err = coord.communicate(timeout=60)
    keyless.wait(30)
    good.wait(30)
    assert coord.returncode == 0, err
    assert load_meta(out.strip().splitlines()[-1])["refused_workers"] >= 1


def root_tmpfs(tmp_path: Path, size: str) -> Path:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                   check=True)
    return mnt


WIDE = "".join(f'[[requests]]\nname = "r{i}"\npath = "/n{i}"\n' for i in range(40))


def test_disk_full_is_one_line_exit_1_and_recoverable(tmp_path):
    mnt = root_tmpfs(tmp_path, "300k")
    try:
        path = tmp_path / "wide.toml"
        path.write_text('[run]\nduration = "4s"\n[load]\nconcurrency = 8\n' + WIDE
                        + '[[models]]\nmodel = "uvloop"\nengine = "fast"\n')
        proc = run_harness("run", str(path), "--out", str(mnt), timeout=120)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("harness:")]
        assert len(errors) == 1 and "No space left on device" in errors[0], proc.stderr
        assert "Traceback" not in proc.stderr
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_read_only_results_is_refused_before_the_run(tmp_path, mock: Mock):
    """A read-only results filesystem is found before anything is sent (exit 2). (Linux
    will not remount a filesystem read-only while we hold its files open for writing, as
    a run now does from its start.)"""
    mnt = root_tmpfs(tmp_path, "5m")
    try:
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        path = write(tmp_path, OPEN.format(duration="2s", rate=50))
        proc = run_harness("run", str(path), "--target", mock.url, "--out", str(mnt / "x"))
        assert proc.returncode == 2 and "Read-only file system" in proc.stderr, proc.stderr
        assert mock.stats()["requests_total"] == 0
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_write_that_fails_mid_run_is_one_line_exit_1(tmp_path, mock: Mock):
    """Any result file that cannot be written when the load is over: one line naming the
    path and the OS error, exit 1, no traceback; the journal stays for harness report."""
    path = write(tmp_path, OPEN.format(duration="3s", rate=100))
    proc = subprocess.Popen([HARNESS, "run", str(path), "--target", mock.url, "--out",
                             str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    run_dir = first_line_dir(proc)
    (run_dir / "summary.csv").mkdir()  # in the way of the file the run writes last
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, out + err
    errors = [line for line in err.splitlines() if line.startswith("harness:")]
    assert len(errors) == 1 and "summary.csv" in errors[0] and "Is a directory" in errors[0]
    assert "Traceback" not in err
    assert (run_dir / "journal" / "events.bin").stat().st_size > 0


def test_signals_while_results_are_written_do_not_interrupt_them(tmp_path, mock: Mock):
    """Ctrl-C, then Ctrl-C and SIGTERM again and again until the process exits: the first
    ends the load, the rest are acknowledged (one line) and the results are complete."""
    path = write(tmp_path, OPEN.format(duration="30s", rate=100))
    proc = subprocess.Popen([HARNESS, "run", str(path), "--target", mock.url, "--out",
                             str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    run_dir = first_line_dir(proc)
    time.sleep(4)
    proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT if int(time.monotonic() * 20) % 2 else
                             signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 3, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.count("writing the results") <= 1
    meta = load_meta(str(run_dir))
    assert meta["state"] == "done" and meta["partial"]
    for name in ("summary.csv", "timeseries.csv", "report.html"):
        assert (run_dir / name).exists(), name


def test_per_second_files_grow_while_the_run_goes_on(tmp_path):
    """timeseries.csv, errors.csv and statuses.csv grow as seconds close (they stayed 0
    bytes for a whole model: an 8 KiB buffer flushed at its end), so `tail -f` shows the
    run and a kill -9 leaves every closed second on disk."""
    import subprocess
    import time

    from tests.conftest import HARNESS
    path = tmp_path / "grow.toml"
    path.write_text('[run]\nduration = "30s"\nworkers = 1\n[target.mock]\n'
                    'faults = { error = { p = 0.2, status = 503 } }\n[load]\nconcurrency = 2\n'
                    'think_time = "50ms"\n[[requests]]\nname = "r"\npath = "/"\n'
                    '[[models]]\nmodel = "thread"\n')
    proc = subprocess.Popen([HARNESS, "run", str(path), "--out", str(tmp_path / "out")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("run directory: "), first
        run_dir = Path(first.split(": ", 1)[1].strip())
        # rows must show while the model still runs (30 s of it): before the fix they came
        # only with its end, when the buffer was flushed; once they show, Ctrl-C ends it
        deadline = time.monotonic() + 20
        grown = {}
        while proc.poll() is None and time.monotonic() < deadline:
            grown = {name: (run_dir / name).read_text().count("\n")
                     for name in ("timeseries.csv", "errors.csv", "statuses.csv")
                     if (run_dir / name).exists()}
            if len(grown) == 3 and all(n >= 2 for n in grown.values()):
                break
            time.sleep(0.2)
        running = proc.poll() is None and time.monotonic() < deadline
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)   # as a user stops it: workers end cleanly
        proc.wait(60)
    assert running, f"no row within 20 s of a 30-s run: {grown}"
    assert all(n >= 2 for n in grown.values()) and len(grown) == 3, grown


def test_a_readmitted_workers_late_seconds_are_their_own(tmp_path, mock: Mock):
    """Two workers at 100 requests/s each; one frozen 4 s (lost after 1 s, then back).
    What it measured before it stopped reaches the coordinator after those seconds were
    written: each late cell goes to its own second (the model's rows are rewritten from
    the journal at its end), never folded into one -- the timeseries used to show a
    false spike of 2-4x the rate in one second. Totals agree with the summary and the
    mockserver."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    rate = 200
    path = write(tmp_path, OPEN.format(duration="12s", rate=rate))
    coord = coordinator(path, endpoint, 2, mock, tmp_path, "--lost-after", "1")
    w0, w1 = worker(endpoint, "w0"), worker(endpoint, "w1")
    deadline = time.monotonic() + 30
    while mock.stats()["requests_total"] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(3)
    os.kill(w1.pid, signal.SIGSTOP)
    time.sleep(4)
    os.kill(w1.pid, signal.SIGCONT)
    out, err = coord.communicate(timeout=90)
    w0.wait(30)
    w1.wait(30)
    run_dir = Path(out.strip().splitlines()[-1])
    meta = load_meta(str(run_dir))
    model = meta["models"]["asyncio-fast"]
    assert model["late_cells"] > 0, (model, err)   # the case this test is about happened
    ts = pd.read_csv(run_dir / "timeseries.csv")
    agg = ts[ts["name"] == "Aggregated"]
    assert agg["second"].is_unique, agg   # one row a second, rewritten, not appended twice
    assert agg["requests"].max() <= rate * 1.2, agg[["second", "requests"]].to_string()
    summary = pd.read_csv(run_dir / "summary.csv")
    total = int(summary[summary["name"] == "Aggregated"]["requests"].iloc[0])
    assert agg["requests"].sum() == total
    hist = pd.read_csv(run_dir / "histograms" / "asyncio-fast.csv")
    assert hist[hist["name"] == "home"]["second"].is_unique
    time.sleep(0.5)
    assert meta["requests_sent"] == mock.stats()["requests_total"]


def test_a_worker_lost_for_good_is_merged_from_its_own_journal(tmp_path, mock: Mock):
    """A worker frozen until the run has ended (lost for good): what it measured before its
    load stopped reached the mockserver but never the coordinator -- requests in no result
    file. Its own journal (`harness worker --journal`) keeps them: `harness report RUN
    --add JOURNAL` merges them exactly, each in its own second, and the counts then equal
    the mockserver's. Adding the same journal again adds nothing."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    rate = 200
    path = write(tmp_path, OPEN.format(duration="8s", rate=rate))
    coord = coordinator(path, endpoint, 2, mock, tmp_path, "--lost-after", "1")
    journal = tmp_path / "w1.bin"
    w0, w1 = worker(endpoint, "w0"), worker(endpoint, "w1", "--journal", str(journal))
    deadline = time.monotonic() + 30
    while mock.stats()["requests_total"] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2)
    os.kill(w1.pid, signal.SIGSTOP)
    try:
        out, err = coord.communicate(timeout=90)
    finally:
        os.kill(w1.pid, signal.SIGCONT)
    w0.wait(30)
    _, w1_err = w1.communicate(timeout=60)
    assert w1.returncode == 1 and "stopped sending load" in w1_err, w1_err
    run_dir = Path(out.strip().splitlines()[-1])
    time.sleep(0.5)
    served = mock.stats()["requests_total"]
    before = load_meta(str(run_dir))
    assert before["requests_sent"] < served, (before["requests_sent"], served)

    added = run_harness("report", str(run_dir), "--add", str(journal))
    assert added.returncode == 3, added.stderr     # partial still: a worker was lost
    assert "cells the coordinator never received" in added.stdout + added.stderr
    after = load_meta(str(run_dir))
    assert after["requests_sent"] == served, (after["requests_sent"], served)
    summary = pd.read_csv(run_dir / "summary.csv")
    agg = summary[summary["name"] == "Aggregated"].iloc[0]
    ts = pd.read_csv(run_dir / "timeseries.csv")
    ts = ts[ts["name"] == "Aggregated"]
    assert ts["second"].is_unique and ts["requests"].sum() == agg["requests"]
    assert ts["requests"].max() <= rate * 1.2, ts[["second", "requests"]].to_string()

    again = run_harness("report", str(run_dir), "--add", str(journal))
    assert "added from" in again.stdout + again.stderr and \
        load_meta(str(run_dir))["requests_sent"] == served
    assert pd.read_csv(run_dir / "summary.csv").equals(summary)

    from harness.control.journal import Journal
    other = tmp_path / "other.bin"
    j = Journal(path=other)
    j.append("join", run="20260101-000000-another", worker=1, name="w1")
    j.close()
    wrong = run_harness("report", str(run_dir), "--add", str(other))
    assert wrong.returncode == 2 and "not of" in wrong.stderr, wrong.stderr


def test_every_file_of_a_run_is_one_writers(tmp_path):
    """The one list of writers (reports/writers.py) names every file a run leaves, so a
    rebuild (recovery, report --add) removes and writes them all: nothing stale is left."""
    from harness.reports.writers import PER_SECOND, WRITERS
    path = write(tmp_path, OPEN.format(duration="1s", rate=20))
    proc = run_harness("run", str(path), "--out", str(tmp_path / "out"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    named = {f for w in WRITERS for f in w.files}
    left = [p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file()]
    for name in left:
        if name.startswith("journal/"):
            continue
        assert name in named or any(Path(name).match(p) for p in PER_SECOND), name
    # verdict.csv: only when models compete; capacity.csv: only for a [capacity] run
    assert named - {"verdict.csv", "capacity.csv"} <= set(left)
