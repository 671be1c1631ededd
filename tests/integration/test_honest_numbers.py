"""What a run prints must not flatter it: a run where nothing succeeded fails, statuses are
kept, a saturated client says so. Against the embedded mockserver and a dead port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import HARNESS, load_meta, run_harness


def dead_port() -> int:
    """A port nobody listens on (bound, then closed: connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_run_where_nothing_succeeds_fails(tmp_path):
    """Against a dead port every request is connect_refused: exit 1 with one line saying
    why, and ok_rps 0 beside rps (failed connects are not throughput)."""
    path = tmp_path / "dead.toml"
    path.write_text('[run]\nduration = "1s"\nworkers = 1\n[load]\nconcurrency = 4\n'
                    '[[requests]]\nname = "r"\npath = "/"\n[[models]]\nmodel = "asyncio"\n'
                    'engine = "fast"\n')
    proc = run_harness("run", str(path), "--target", f"http://127.0.0.1:{dead_port()}",
                       "--out", str(tmp_path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    why = [line for line in proc.stderr.splitlines() if line.startswith("run failed:")]
    assert len(why) == 1 and "asyncio-fast: no request succeeded" in why[0]
    assert "connect_refused" in why[0]
    # with --quiet too: the reason is on stderr, the run directory the last stdout line
    quiet = run_harness("run", str(path), "--target", f"http://127.0.0.1:{dead_port()}",
                        "--out", str(tmp_path), "--quiet")
    assert quiet.returncode == 1
    assert any(line.startswith("run failed: asyncio-fast: no request succeeded")
               for line in quiet.stderr.splitlines()), quiet.stderr
    assert len(quiet.stdout.strip().splitlines()) == 1
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    summary = pd.read_csv(run_dir / "summary.csv")
    agg = summary[summary["name"] == "Aggregated"].iloc[0]
    assert agg["requests"] == agg["failures"] > 0
    assert agg["rps"] > 0 and agg["ok_rps"] == 0
    ts = pd.read_csv(run_dir / "timeseries.csv")
    assert (ts["ok_rps"] == 0).all() and (ts["rps"] > 0).all()


EVERY_MODEL = ['model = "sync"', 'model = "thread"', 'model = "asyncio"',
               'model = "uvloop"\nengine = "fast"',
               'model = "process"\nprocesses = 2\nsub_model = "thread"',
               'model = "locust"', 'model = "locust-http"']


def test_statuses_are_kept_in_every_model(tmp_path):
    """errors.csv names the status of each unexpected_status, statuses.csv counts every
    answer's status per model, name and second -- and both agree with the mockserver."""
    path = tmp_path / "statuses.toml"
    path.write_text('[run]\nrequests = 60\nworkers = 1\n[load]\nconcurrency = 3\n'
                    '[[requests]]\nname = "ok"\npath = "/"\n'
                    '[[requests]]\nname = "gone"\npath = "/status/503"\n'
                    '[[requests]]\nname = "made"\npath = "/status/201"\n'
                    + "".join(f"[[models]]\n{m}\n" for m in EVERY_MODEL))
    proc = run_harness("run", str(path), "--out", str(tmp_path), "--quiet", timeout=300)
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    meta = load_meta(str(run_dir))
    statuses = pd.read_csv(run_dir / "statuses.csv")
    errors = pd.read_csv(run_dir / "errors.csv")
    summary = pd.read_csv(run_dir / "summary.csv").set_index(["model", "name"])
    assert list(statuses.columns) == ["model", "name", "second", "status", "count"]
    labels = list(meta["models"])
    assert len(labels) == len(EVERY_MODEL)
    for label in labels:
        mine = statuses[statuses["model"] == label].groupby(["name", "status"])["count"].sum()
        expected = {("ok", 200), ("gone", 503), ("made", 201)}
        assert set(mine.index) <= expected, (label, mine)
        for name in ("ok", "gone", "made"):
            requests = summary.loc[(label, name), "requests"]
            assert mine.get((name, {"ok": 200, "gone": 503, "made": 201}[name]), 0) == requests
        failed = errors[errors["model"] == label]
        assert set(zip(failed["kind"], failed["status"], failed["name"], strict=True)) \
            <= {("unexpected_status", 503, "gone")}, (label, failed)
        assert failed["count"].sum() == summary.loc[(label, "gone"), "failures"] \
            == summary.loc[(label, "gone"), "requests"]
    mock = meta["mockserver_stats"]["by_status"]
    assert int(mock["503"]) == statuses[statuses["status"] == 503]["count"].sum()


def test_a_saturated_client_says_so(tmp_path):
    """A thread model burning CPU per request (the lesson's sum of squares) runs its load
    process at ~100%: meta.json, the output and the report say it measured its own
    client; a sync model waiting on a slow target does not."""
    path = tmp_path / "busy.toml"
    path.write_text('[run]\nduration = "3s"\nworkers = 1\n'
                    '[target.mock]\nlatency = { dist = "fixed", ms = 20 }\n'
                    '[load]\nconcurrency = 4\n[[requests]]\nname = "r"\npath = "/"\n'
                    '[[models]]\nmodel = "sync"\n'
                    '[[models]]\nmodel = "thread"\ncpu_work = 3000000\n')
    proc = run_harness("run", str(path), "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    meta = load_meta(str(run_dir))
    assert meta["models"]["thread"]["client_saturated"] is True, meta["models"]["thread"]
    assert meta["models"]["sync"]["client_saturated"] is False, meta["models"]["sync"]
    assert "warning: thread saturated its client" in proc.stderr
    assert "sync saturated" not in proc.stdout
    assert "thread measured its own client" in meta["verdict"]
    assert "saturated its client" in (run_dir / "report.html").read_text()


def test_strict_exits_4_when_a_model_measured_its_own_client(tmp_path):
    """`--strict`: a run whose thread model burned its load process's core is a
    measurement of the generator -- exit 4, said on stderr; summary.csv's `valid` is false
    for it and true for the sync model beside it, client.csv has each measured second's
    signals with the one that fired, and the verdict does not crown the invalid model."""
    path = tmp_path / "strict.toml"
    path.write_text('[run]\nduration = "3s"\nworkers = 1\n'
                    '[target.mock]\nlatency = { dist = "fixed", ms = 20 }\n'
                    '[load]\nconcurrency = 4\n[[requests]]\nname = "r"\npath = "/"\n'
                    '[[models]]\nmodel = "sync"\n'
                    '[[models]]\nmodel = "thread"\ncpu_work = 3000000\n')
    proc = run_harness("run", str(path), "--out", str(tmp_path), "--strict")
    assert proc.returncode == 4, proc.stderr
    assert "measured the generator, not the target: thread" in proc.stderr
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    agg = pd.read_csv(run_dir / "summary.csv").query("name == 'Aggregated'").set_index("model")
    assert not agg.loc["thread", "valid"] and agg.loc["sync", "valid"]
    client = pd.read_csv(run_dir / "client.csv")
    assert list(client.columns) == ["model", "worker", "process", "second", "cpu",
                                    "loop_lag_ms", "late_ratio", "host_idle", "signal"]
    thread = client[client["model"] == "thread"]
    # its CPU-bound threads hold the GIL: the tick that samples gets in at least once;
    # each second it burned a core (`cpu`), or wanted one the busy host did not give it
    # (`starved`: a test running beside this one, or a CPU hog)
    assert len(thread) >= 1 and thread["signal"].isin(["cpu", "starved"]).all(), thread
    assert (thread[thread["signal"] == "cpu"]["cpu"] >= 0.9).all()
    assert len(client[client["model"] == "sync"]) >= 2
    meta = load_meta(str(run_dir))
    assert meta["verdict"].startswith("verdict: sync "), meta["verdict"]
    assert "thread measured its own client" in meta["verdict"]


def test_a_starved_client_is_client_bound_though_its_cpu_stays_low(tmp_path):
    """The whole run pinned to one core beside a CPU-bound process pinned there too: the
    thread model's load process never reaches 90% of a core (it gets about half), yet it
    wanted a core and waited for it -- client-bound by the `starved` signal, named."""
    import shutil
    if shutil.which("taskset") is None or len(os.sched_getaffinity(0)) < 1:
        pytest.skip("taskset is not installed")
    core = str(sorted(os.sched_getaffinity(0))[-1])
    hog = subprocess.Popen(["taskset", "-c", core, sys.executable, "-c",
                            "import time\nend = time.time() + 60\nwhile time.time() < end: pass"])
    try:
        path = tmp_path / "starved.toml"
        path.write_text('[run]\nduration = "3s"\nworkers = 1\n'
                        '[target.mock]\nlatency = { dist = "fixed", ms = 5 }\n'
                        '[load]\nconcurrency = 2\n[[requests]]\nname = "r"\npath = "/"\n'
                        '[[models]]\nmodel = "thread"\ncpu_work = 3000000\n')
        proc = subprocess.run(["taskset", "-c", core, HARNESS, "run", str(path), "--out",
                               str(tmp_path), "--quiet"], capture_output=True, text=True,
                              timeout=120)
    finally:
        hog.kill()
        hog.wait()
    assert proc.returncode == 0, proc.stderr
    meta = load_meta(proc.stdout.strip().splitlines()[-1])
    thread = meta["models"]["thread"]
    cpu_share = thread["cpu_s"] / (thread["measured_s"] + 0.5)
    assert cpu_share < 0.9, thread          # its own CPU alone would not have said so
    assert thread["client_saturated"] is True, thread
    assert thread["client_saturated_by"].get("starved", 0) > 0, thread
    assert "waited for one" in proc.stderr


def test_progress_prints_no_nan_before_the_first_second(tmp_path):
    """Live progress used to print `p99 nan ms` and `0 req/s` before a model's first
    second was in: a dash until there is a number."""
    path = tmp_path / "progress.toml"
    path.write_text('[run]\nduration = "3s"\nworkers = 1\n[load]\nconcurrency = 2\n'
                    '[[requests]]\nname = "r"\npath = "/"\n[[models]]\nmodel = "thread"\n')
    proc = run_harness("run", str(path), "--out", str(tmp_path))  # not a tty: plain lines
    assert proc.returncode == 0, proc.stderr
    progress = [line for line in proc.stdout.splitlines() if "ok/s" in line]
    assert progress, proc.stdout
    assert not any("nan" in line for line in progress), progress
