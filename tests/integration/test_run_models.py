"""Every client model against a real mockserver, through the real coordinator and workers:
what the harness says it sent equals what the mockserver counted, exactly."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import HARNESS, Mock, load_meta, run_harness

MODELS = [
    'model = "sync"',
    'model = "thread"',
    'model = "asyncio"',
    'model = "asyncio"\nengine = "fast"',
    'model = "uvloop"',
    'model = "uvloop"\nengine = "fast"',
    'model = "process"\nprocesses = 2\nsub_model = "thread"',
    'model = "process"\nprocesses = 2\nsub_model = "asyncio"',
    'model = "locust"',
    'model = "locust-http"',
]


def scenario(tmp_path: Path, model: str, load: str = "concurrency = 8",
             run: str = 'duration = "1s"\nwarmup = "0.3s"', requests: str | None = None,
             extra: str = "") -> Path:
    requests = requests or ('[[requests]]\nname = "home"\npath = "/"\nweight = 2\n'
                            '[[requests]]\nname = "blob"\npath = "/bytes/300"\n')
    path = tmp_path / "s.toml"
    path.write_text(f"[run]\n{run}\nworkers = 2\n[load]\n{load}\n{requests}\n"
                    f"[[models]]\n{model}\n{extra}")
    return path


def reset(mock: Mock) -> None:
    mock.get_json("/_mock/reset", "POST", b"")


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.replace("\n", " "))
def test_sent_equals_counted(tmp_path, shared_mock: Mock, model: str):
    reset(shared_mock)
    proc = run_harness("run", str(scenario(tmp_path, model)), "--target", shared_mock.url,
                       "--out", str(tmp_path), "--quiet")
    assert proc.returncode == 0, proc.stderr
    run_dir = proc.stdout.strip().splitlines()[-1]
    meta = load_meta(run_dir)
    counted = shared_mock.stats()["requests_total"]
    assert meta["requests_sent"] == counted > 0
    assert not meta["partial"] and meta["dropped_messages"] == 0
    summary = pd.read_csv(Path(run_dir) / "summary.csv")
    agg = summary[summary["name"] == "Aggregated"].iloc[0]
    assert agg["failures"] == 0 and agg["requests"] <= counted
    assert set(summary["name"]) == {"home", "blob", "Aggregated"}
    blob = summary[summary["name"] == "blob"].iloc[0]
    assert blob["bytes_in"] == 300 * blob["requests"]
    # Warm-up requests are sent and counted but not in the results: never more results
    # than sends. Not `<`: on a busy machine a model's processes may still be starting
    # (Locust hatching, a spawned process importing aiohttp) through the 0.3 s warm-up
    # and send none in it (seen once in CI's neighbourhood); that warm-up answers are
    # left out is held exactly in tests/unit/test_stats.py (drops_warmup).
    assert agg["requests"] <= meta["requests_sent"]


def test_count_bounded_run_sends_exactly(tmp_path, shared_mock: Mock):
    reset(shared_mock)
    path = scenario(tmp_path, 'model = "thread"', run="requests = 500")
    proc = run_harness("run", str(path), "--target", shared_mock.url, "--out", str(tmp_path),
                       "--quiet")
    assert proc.returncode == 0, proc.stderr
    summary = pd.read_csv(Path(proc.stdout.strip()) / "summary.csv")
    assert summary[summary["name"] == "Aggregated"]["requests"].iloc[0] == 500
    assert shared_mock.stats()["requests_total"] == 500


def test_open_model_rate_is_accurate(tmp_path, shared_mock: Mock):
    reset(shared_mock)
    path = scenario(tmp_path, 'model = "uvloop"\nengine = "fast"',
                    load='mode = "open"\nrate = 400\nconcurrency = 20',
                    run='duration = "3s"')
    proc = run_harness("run", str(path), "--target", shared_mock.url, "--out", str(tmp_path),
                       "--quiet")
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(proc.stdout.strip())
    meta = load_meta(str(run_dir))
    assert meta["requests_sent"] == pytest.approx(1200, rel=0.03)
    ts = pd.read_csv(run_dir / "timeseries.csv")
    per_second = ts[(ts["name"] == "Aggregated") & (ts["second"] < 3)]["requests"]
    assert per_second.between(360, 440).all(), per_second.tolist()
    assert meta["models"]["uvloop-fast"]["skipped"] == 0


def stall_mock(mock: Mock, after_s: float, n: int) -> threading.Thread:
    """Block the mockserver's event loop with /cpu/{n} (about a second) `after_s` after
    the load reached it: timed from the first requests, not from the start of the
    command, so a slow start-up on a busy machine cannot move the stall out of the run."""
    def stall() -> None:
        deadline = time.monotonic() + 60
        base = mock.stats()["requests_total"]
        while mock.stats()["requests_total"] <= base and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(after_s)
        with urllib.request.urlopen(f"{mock.url}/cpu/{n}", timeout=30) as resp:
            resp.read()
    thread = threading.Thread(target=stall)
    thread.start()
    return thread


def calibrate_cpu(mock: Mock) -> int:
    n = 2_000_000
    start = time.perf_counter()
    urllib.request.urlopen(f"{mock.url}/cpu/{n}", timeout=30).read()
    per = (time.perf_counter() - start) / n
    return int(1.0 / per)  # about one second of blocking


def p99_with_stall(tmp_path: Path, mock: Mock, load: str, n: int) -> float:
    path = scenario(tmp_path, 'model = "uvloop"\nengine = "fast"', load=load,
                    run='duration = "4s"', requests='[[requests]]\nname = "home"\npath = "/"\n')
    thread = stall_mock(mock, 1.5, n)
    proc = run_harness("run", str(path), "--target", mock.url, "--out", str(tmp_path),
                       "--quiet")
    thread.join()
    assert proc.returncode == 0, proc.stderr
    summary = pd.read_csv(Path(proc.stdout.strip()) / "summary.csv")
    return float(summary[summary["name"] == "Aggregated"]["p99_ms"].iloc[0])


def test_stall_shows_in_open_model_p99(tmp_path, mock: Mock):
    """Coordinated omission: a 1 s stall must show up in the open model's p99. The closed
    model, whose few users simply wait, hides it (the failure mode the open model fixes)."""
    n = calibrate_cpu(mock)
    open_p99 = p99_with_stall(tmp_path, mock, 'mode = "open"\nrate = 200\nconcurrency = 4', n)
    closed_p99 = p99_with_stall(tmp_path, mock, "concurrency = 4", n)
    assert open_p99 > 400, open_p99
    assert closed_p99 < open_p99 / 2, (closed_p99, open_p99)


def test_thresholds_exit_99_after_writing(tmp_path, shared_mock: Mock):
    path = scenario(tmp_path, 'model = "asyncio"', extra='[thresholds]\np99_ms = "< 0.001"\n')
    proc = run_harness("run", str(path), "--target", shared_mock.url, "--out", str(tmp_path))
    assert proc.returncode == 99
    assert "threshold crossed: asyncio-aiohttp: p99_ms < 0.001" in proc.stderr
    assert (Path(proc.stdout.strip().splitlines()[-1]) / "summary.csv").exists()


def test_ctrl_c_leaves_partial_result(tmp_path, shared_mock: Mock):
    reset(shared_mock)
    path = scenario(tmp_path, 'model = "thread"', run='duration = "30s"')
    proc = subprocess.Popen([HARNESS, "run", str(path), "--target", shared_mock.url,
                             "--out", str(tmp_path), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, err
    run_dir = Path(out.strip().splitlines()[-1])
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["partial"] and meta["interrupted"]
    summary = pd.read_csv(run_dir / "summary.csv")
    assert summary[summary["name"] == "Aggregated"]["requests"].iloc[0] > 0
    time.sleep(0.5)
    assert meta["requests_sent"] == shared_mock.stats()["requests_total"]


def test_several_models_get_a_verdict(tmp_path):
    """Slow I/O against the embedded mockserver: one blocking connection against fifty
    coroutines. asyncio must win by far more than the tie margin, and the verdict is in
    stdout, verdict.csv and meta.json, agreeing with the rule (I/O slow -> asyncio).
    Four measured seconds: the verdict ranks only models that measured the target, and
    one second of a busy runner (a CPU hog beside the suite) must not be a quarter."""
    path = tmp_path / "v.toml"
    path.write_text('[run]\nduration = "4s"\nwarmup = "0.3s"\nworkers = 1\n'
                    '[target.mock]\nlatency = { dist = "fixed", ms = 40 }\n'
                    '[load]\nconcurrency = 50\n[[requests]]\nname = "slow"\npath = "/"\n'
                    '[[models]]\nmodel = "sync"\n[[models]]\nmodel = "asyncio"\n')
    proc = run_harness("run", str(path), "--out", str(tmp_path))  # not quiet: the verdict
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    assert "verdict: asyncio-aiohttp for this io-slow workload" in proc.stdout
    verdict = pd.read_csv(run_dir / "verdict.csv")
    assert list(verdict.columns) == ["model", "rps", "p50_ms", "p99_ms", "failures",
                                     "error_rate", "cpu_pct", "rss_peak_mb", "protocol",
                                     "winner"]
    assert set(verdict["protocol"]) == {"HTTP/1.1"}
    # the console table says what each model costs its client per request
    assert "us/req  protocol" in proc.stdout
    winner = verdict[verdict["winner"]]
    assert winner["model"].tolist() == ["asyncio-aiohttp"]
    rps = dict(zip(verdict["model"], verdict["rps"], strict=True))
    assert rps["asyncio-aiohttp"] > 10 * rps["sync"]  # ~1,250 vs ~25 requests/s
    meta = load_meta(str(run_dir))
    assert meta["verdict_agrees"] is True and "-> agrees" in meta["verdict"]


def run_against_faulty_mock(tmp_path: Path, fault: str, models: list[str]
                            ) -> tuple[Path, dict, pd.DataFrame]:
    """One short run (8 users, 1 s, no warm-up) of `models` against the embedded mockserver
    answering in 2 ms with `fault` injected; returns the run dir, meta.json and errors.csv."""
    path = tmp_path / "faulty.toml"
    path.write_text('[run]\nduration = "1s"\nwarmup = "0s"\ntimeout = "0.5s"\nworkers = 1\n'
                    '[target.mock]\nlatency = { dist = "fixed", ms = 2 }\n'
                    f'[target.mock.faults]\n{fault}\n'
                    '[load]\nconcurrency = 8\n[[requests]]\nname = "r"\npath = "/"\n'
                    + "".join(f"[[models]]\n{m}\n" for m in models))
    proc = run_harness("run", str(path), "--out", str(tmp_path), "--quiet")
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    return run_dir, load_meta(str(run_dir)), pd.read_csv(run_dir / "errors.csv")


def resets_reported(errors: pd.DataFrame) -> int:
    return int(errors[errors["kind"] == "reset"]["count"].sum())


@pytest.mark.parametrize("model", ['model = "asyncio"', 'model = "thread"',
                                   'model = "uvloop"\nengine = "fast"'],
                         ids=["asyncio-aiohttp", "thread", "uvloop-fast"])
def test_resets_are_reported_not_retried(tmp_path, model: str):
    """A connection reset by the target is an error the user sees, and no client library
    quietly sends the request again: what we sent still equals what the mockserver
    counted (aiohttp retries once by default; we turn that off)."""
    _, meta, errors = run_against_faulty_mock(tmp_path, "reset = 0.05", [model])
    assert meta["requests_sent"] == meta["mockserver_stats"]["requests_total"]
    resets = resets_reported(errors)
    injected = meta["mockserver_stats"]["faults"]["reset"]
    assert resets > 0 and resets <= injected, (resets, injected, errors)


@pytest.mark.parametrize("model", ["locust", "locust-http"])
def test_locust_resets_account_for_every_counted_request(tmp_path, model: str):
    """Locust's FastHttpUser resends a reset request without reporting it (geventhttpclient);
    whatever Locust does, each request the mockserver counted is one Locust reported or a
    reset Locust kept quiet about."""
    _, meta, errors = run_against_faulty_mock(tmp_path, "reset = 0.05",
                                              [f'model = "{model}"'])
    reported = resets_reported(errors)
    injected = meta["mockserver_stats"]["faults"]["reset"]
    hidden = meta["mockserver_stats"]["requests_total"] - meta["requests_sent"]
    assert injected > 0 and hidden + reported == injected, (hidden, reported, injected)


@pytest.mark.parametrize("fault, kind", [
    ("malformed = 0.05", "malformed_response"),
    ("error = { p = 0.05, status = 503 }", "unexpected_status"),
    ("hang = { p = 0.05, ms = 2000 }", "timeout"),
], ids=["malformed", "status", "hang"])
def test_every_model_names_a_fault_the_same(tmp_path, fault: str, kind: str):
    """One injected fault, every kind of client (stdlib, aiohttp, our fast engine, Locust's
    two): each reports it under the same error kind, and nothing else goes wrong."""
    models = ['model = "sync"', 'model = "asyncio"', 'model = "uvloop"\nengine = "fast"',
              'model = "locust"', 'model = "locust-http"']
    _, _, errors = run_against_faulty_mock(tmp_path, fault, models)
    kinds = errors.groupby("model")["kind"].agg(set).to_dict()
    labels = ["sync", "asyncio-aiohttp", "uvloop-fast", "locust", "locust-http"]
    assert kinds == {label: {kind} for label in labels}, kinds


class _Redirector(BaseHTTPRequestHandler):
    """A real server that answers every request with a redirect to itself and counts."""

    protocol_version = "HTTP/1.1"
    hits = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        type(self).hits += 1
        self.send_response(302)
        self.send_header("Location", "/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize("model", ['model = "sync"', 'model = "asyncio"',
                                   'model = "uvloop"\nengine = "fast"'],
                         ids=["sync", "asyncio-aiohttp", "uvloop-fast"])
def test_redirects_are_answers_not_followed(tmp_path, model: str):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirector)
    _Redirector.hits = 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        path = tmp_path / "redirect.toml"
        path.write_text('[run]\nrequests = 50\nworkers = 1\n[load]\nconcurrency = 2\n'
                        '[[requests]]\nname = "r"\npath = "/"\n'
                        f"[[models]]\n{model}\n")
        proc = run_harness("run", str(path), "--target",
                           f"http://127.0.0.1:{server.server_address[1]}", "--out",
                           str(tmp_path), "--quiet")
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 0, proc.stderr
    meta = load_meta(proc.stdout.strip().splitlines()[-1])
    assert meta["requests_sent"] == _Redirector.hits == 50
