"""Multi-host form on one machine: `harness coordinator` plus `harness worker`s, started as
separate processes the way a user starts them; faults injected with real signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import msgpack
import pandas as pd
import psutil
import pytest
import zmq

from harness.control import messages as protocol
from tests.conftest import HARNESS, Mock, load_meta, run_harness


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "dist.toml"
    path.write_text(body)
    return path


SCENARIO = """
[run]
duration = "{duration}"
[load]
mode = "open"
rate = {rate}
concurrency = 30
[[requests]]
name = "home"
path = "/"
[[models]]
model = "asyncio"
"""


def coordinator(scenario: Path, endpoint: str, n: int, mock: Mock, out: Path,
                *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([HARNESS, "coordinator", str(scenario), "--bind", endpoint,
                             "--expect-workers", str(n), "--target", mock.url, "--out",
                             str(out), "--quiet", "--wait-workers", "30", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def worker(endpoint: str, name: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([HARNESS, "worker", "--connect", endpoint, "--name", name, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kill_one_of_three_workers(tmp_path, mock: Mock):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    path = write(tmp_path, SCENARIO.format(duration="6s", rate=300))
    coord = coordinator(path, endpoint, 3, mock, tmp_path)
    workers = [worker(endpoint, f"w{i}") for i in range(3)]
    time.sleep(5)  # joined, prepared (load processes spawned) and about 2-3 s into the run
    workers[1].send_signal(signal.SIGKILL)
    out, err = coord.communicate(timeout=60)
    for w in workers:
        w.wait(20)
    assert coord.returncode == 3, err
    # the killed worker's orphaned load processes exit quietly (they printed a 15-line
    # BrokenPipeError traceback into the stderr they share with it); read to EOF: all of
    # them have exited
    orphans = workers[1].stderr.read()
    assert "Traceback" not in orphans and "BrokenPipeError" not in orphans, orphans[-2000:]
    run_dir = Path(out.strip().splitlines()[-1])
    meta = load_meta(str(run_dir))
    assert meta["partial"] is True
    lost = [w for w in meta["workers"] if w["lost"]]
    assert [w["name"] for w in lost] == ["w1"] and lost[0]["lost_at"] and \
        lost[0]["lost_during"] == "asyncio-aiohttp"
    time.sleep(0.5)
    counted = mock.stats()["requests_total"]
    summary = pd.read_csv(run_dir / "summary.csv")
    reported = int(summary.query("name == 'Aggregated'")["requests"].iloc[0])
    # What w1 sent but never reported: at most the interval it held (<= ~1.5 s at 100/s)
    # plus what was in flight. Everything received before the kill is in the results.
    assert reported <= counted
    assert counted - reported <= 2 * 100 + 30, (counted, reported)
    assert reported > 1000


def test_killed_coordinator_stops_workers(tmp_path, mock: Mock):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    path = write(tmp_path, SCENARIO.format(duration="30s", rate=200))
    coord = coordinator(path, endpoint, 2, mock, tmp_path)
    workers = [worker(endpoint, f"w{i}") for i in range(2)]
    time.sleep(5)
    assert mock.stats()["requests_total"] > 0  # load is flowing
    coord.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    for w in workers:
        w.wait(10)
        assert w.returncode != 0
        assert "no word from the coordinator" in w.stderr.read()
    # 3 heartbeat intervals (1.5 s) to notice, then stopping the load process.
    assert time.monotonic() - killed < 5
    settled = mock.stats()["requests_total"]
    time.sleep(1.0)
    assert mock.stats()["requests_total"] == settled  # no runaway load


def test_malformed_frames_are_dropped_and_counted(tmp_path, mock: Mock):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    path = write(tmp_path, SCENARIO.format(duration="3s", rate=100))
    coord = coordinator(path, endpoint, 1, mock, tmp_path)
    w = worker(endpoint, "w0")
    ctx = zmq.Context.instance()
    rogue = ctx.socket(zmq.DEALER)
    rogue.connect(endpoint)
    time.sleep(4)
    v = protocol.VERSION  # frames of this version, malformed in their fields or type
    bad = [os.urandom(40), msgpack.packb([1, 2, 3]), msgpack.packb({"v": v, "t": "STATS"}),
           msgpack.packb({"v": v, "t": "BOGUS"}), protocol.encode("HEARTBEAT")]
    for frame in bad:
        rogue.send(frame)
    rogue.send_multipart([b"two", b"frames"])
    out, err = coord.communicate(timeout=60)
    w.wait(20)
    rogue.close(0)
    assert coord.returncode == 0, err
    meta = load_meta(out.strip().splitlines()[-1])
    assert meta["dropped_messages"] >= len(bad) + 1
    assert meta["requests_sent"] == mock.stats()["requests_total"]


def test_version_mismatch_is_refused_with_a_message(tmp_path, mock: Mock):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    path = write(tmp_path, SCENARIO.format(duration="1s", rate=50))
    coord = coordinator(path, endpoint, 1, mock, tmp_path)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.connect(endpoint)
    sock.send(msgpack.packb({"v": 99, "t": "HELLO", "name": "old", "pid": 1, "host": "h"}))
    assert sock.poll(10000)
    reply = protocol.decode(sock.recv())
    assert reply["t"] == "REFUSE" and "protocol version 99" in reply["reason"]
    sock.close(0)
    w = worker(endpoint, "w0")
    out, err = coord.communicate(timeout=60)
    w.wait(20)
    assert coord.returncode == 0 and "refused a worker: protocol version 99" in err
    assert load_meta(out.strip().splitlines()[-1])["refused_workers"] == 1


def test_curve_refuses_unknown_keys(tmp_path, mock: Mock):
    good, other = tmp_path / "keys", tmp_path / "other"
    assert run_harness("keys", str(good)).returncode == 0
    assert run_harness("keys", str(other)).returncode == 0
    (other / "coordinator.key").write_text((good / "coordinator.key").read_text())
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    path = write(tmp_path, SCENARIO.format(duration="2s", rate=100))
    coord = coordinator(path, endpoint, 1, mock, tmp_path, "--curve-dir", str(good))
    intruder = worker(endpoint, "intruder", "--curve-dir", str(other),
                      "--connect-timeout", "4")
    time.sleep(2)
    member = worker(endpoint, "member", "--curve-dir", str(good))
    out, err = coord.communicate(timeout=60)
    assert coord.returncode == 0, err
    assert member.wait(20) == 0
    assert intruder.wait(20) == 1
    meta = load_meta(out.strip().splitlines()[-1])
    assert [w["name"] for w in meta["workers"]] == ["member"]
    assert meta["refused_workers"] >= 1
    assert meta["requests_sent"] == mock.stats()["requests_total"] > 0


def test_non_loopback_bind_needs_curve_or_insecure(tmp_path):
    path = write(tmp_path, SCENARIO.format(duration="1s", rate=10))
    proc = run_harness("coordinator", str(path), "--bind", "tcp://0.0.0.0:5999",
                       "--expect-workers", "1")
    assert proc.returncode == 2 and "not loopback" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_coordinator_without_workers_fails_clearly(tmp_path, mock: Mock):
    path = write(tmp_path, SCENARIO.format(duration="1s", rate=10))
    proc = run_harness("coordinator", str(path), "--bind", f"tcp://127.0.0.1:{free_port()}",
                       "--expect-workers", "2", "--wait-workers", "1", "--target", mock.url)
    assert proc.returncode == 1 and "expected 2 workers" in proc.stderr
    assert mock.stats()["requests_total"] == 0


def test_worker_retries_until_coordinator_is_up(tmp_path, mock: Mock):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    w = worker(endpoint, "early")
    time.sleep(2)  # the worker is already saying HELLO into the void
    path = write(tmp_path, SCENARIO.format(duration="1s", rate=50))
    coord = coordinator(path, endpoint, 1, mock, tmp_path)
    out, err = coord.communicate(timeout=60)
    assert coord.returncode == 0, err
    assert w.wait(20) == 0
    assert json.loads((Path(out.strip().splitlines()[-1]) / "meta.json").read_text())[
        "workers"][0]["name"] == "early"


def test_three_workers_start_together_and_reconcile(tmp_path, mock: Mock):
    """A clean three-worker run: every request reconciles with the mock, and each worker
    started within a few ms of the coordinator's intended start (one host, one clock)."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    path = write(tmp_path, SCENARIO.format(duration="2s", rate=150))
    before = mock.stats()["requests_total"]
    coord = coordinator(path, endpoint, 3, mock, tmp_path)
    workers = [worker(endpoint, f"w{i}") for i in range(3)]
    out, err = coord.communicate(timeout=60)
    assert coord.returncode == 0, err
    assert all(w.wait(20) == 0 for w in workers)
    meta = load_meta(out.strip().splitlines()[-1])
    offsets = meta["models"]["asyncio-aiohttp"]["start_offset_ms"]
    assert sorted(offsets) == ["0", "1", "2"]
    # START goes out to all three in one broadcast; on loopback delivery takes well under
    # a millisecond, so 100 ms is slack for a loaded CI machine, not the expected skew.
    assert all(0 <= v < 100 for v in offsets.values()), offsets
    assert meta["requests_sent"] == mock.stats()["requests_total"] - before


@pytest.mark.parametrize("args, message", [
    (["worker", "--connect", "garbage"], "--connect garbage: expected tcp://HOST:PORT"),
    (["worker", "--connect", "tcp://127.0.0.1:70000"], "expected a port 1..65535, got 70000"),
    (["worker", "--connect", "tcp://*:5555"], "'*' is only for binding"),
    (["coordinator", "SCENARIO", "--bind", "udp://x:1", "--expect-workers", "1"],
     "--bind udp://x:1: expected tcp://HOST:PORT"),
    (["keys", "/proc/no-such-dir/keys"], "keys /proc/no-such-dir/keys: cannot write"),
])
def test_bad_endpoints_and_key_dirs_are_usage_errors(tmp_path, args, message):
    path = write(tmp_path, SCENARIO.format(duration="1s", rate=10))
    proc = run_harness(*[str(path) if a == "SCENARIO" else a for a in args], timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def _tagged(tag: str) -> set[int]:
    """Processes that inherited this test's tag in their environment: what the command
    started, and only that (another run on the machine is not ours to count)."""
    out = set()
    for p in psutil.process_iter():
        try:
            if p.environ().get("LH_TEST_TAG") == tag:
                out.add(p.pid)
        except (psutil.Error, OSError):
            continue
    return out


def test_coordinator_port_in_use_is_a_clear_failure(tmp_path):
    import os
    import uuid
    tag = uuid.uuid4().hex
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        endpoint = f"tcp://127.0.0.1:{busy.getsockname()[1]}"
        path = write(tmp_path, SCENARIO.format(duration="1s", rate=10))
        proc = run_harness("coordinator", str(path), "--bind", endpoint, "--expect-workers",
                           "1", "--wait-workers", "2", "--out", str(tmp_path), timeout=30,
                           env={**os.environ, "LH_TEST_TAG": tag})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"cannot bind {endpoint}: Address already in use" in proc.stderr
    assert _tagged(tag) == set()  # the embedded mockserver it started is gone too


def test_extra_worker_waits_as_spare_and_none_leaves_before_the_results(tmp_path,
                                                                       mock: Mock):
    """compose --scale above WORKERS starts one worker too many: it waits as a spare
    instead of failing (which would abort the whole stack), and no worker exits before the
    coordinator has written every result file (compose's --exit-code-from stops the
    stack at the first exit)."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    out = tmp_path / "out"
    coord = coordinator(write(tmp_path, SCENARIO.format(duration="2s", rate=100)),
                        endpoint, 1, mock, out)
    workers = [worker(endpoint, f"w{i}") for i in range(2)]
    exited_before_report = []
    deadline = time.monotonic() + 90
    while any(w.poll() is None for w in workers) and time.monotonic() < deadline:
        for w in workers:
            if w.poll() is not None and w not in exited_before_report \
                    and not list(out.glob("*/report.html")):
                exited_before_report.append(w)
        time.sleep(0.02)
    stdout, stderr = coord.communicate(timeout=60)
    assert coord.returncode == 0, stderr
    assert [w.wait(5) for w in workers] == [0, 0], [w.stderr.read() for w in workers]
    assert not exited_before_report
    assert "waits as a spare" in stderr
    meta = load_meta(stdout.strip().splitlines()[-1])
    assert len(meta["workers"]) == 1 and meta["refused_workers"] == 0
    assert not meta["partial"] and meta["dropped_messages"] == 0


def next_welcome(sock: zmq.Socket) -> dict:
    """The next WELCOME on `sock`; HEARTBEATs the coordinator sends the admitted worker
    meanwhile are passed over (decoding each: a malformed message still fails the test)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert sock.poll(max(1, int((deadline - time.monotonic()) * 1000)))
        message = protocol.decode(sock.recv())  # raises Malformed if incomplete
        if message["t"] != "HEARTBEAT":
            return message
    raise AssertionError("no WELCOME within 10 s")


def test_repeated_hello_gets_a_valid_welcome(tmp_path, mock: Mock):
    """A worker whose first WELCOME was slow says HELLO again: the second WELCOME must be a
    whole message of this protocol version (it lacked `lost_after`, so a worker dropped it
    as malformed)."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    coord = coordinator(write(tmp_path, SCENARIO.format(duration="1s", rate=50)),
                        endpoint, 1, mock, tmp_path, "--wait-workers", "5")
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.connect(endpoint)
    hello = protocol.encode("HELLO", name="twice", pid=1, host="h")
    welcomes = []
    for _ in range(2):
        sock.send(hello)
        welcomes.append(next_welcome(sock))
    sock.close(0)
    coord.kill()
    coord.wait(10)
    assert [w["t"] for w in welcomes] == ["WELCOME", "WELCOME"]
    assert welcomes[0]["index"] == welcomes[1]["index"] == 0


def test_a_hostile_hello_is_dropped_and_a_run_that_never_starts_says_so(tmp_path):
    """A HELLO with a 1 MB worker name (a 100 MB one made a 105 MB journal and stderr
    line) is dropped and counted; when no worker came, meta.json says the run failed and
    keeps dropped_messages (it stayed `running` without them)."""
    import zmq

    from harness.control.messages import VERSION
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = write(tmp_path, SCENARIO.format(duration="1s", rate=10))
    proc = subprocess.Popen([HARNESS, "coordinator", str(path), "--bind",
                             f"tcp://127.0.0.1:{port}", "--expect-workers", "1",
                             "--wait-workers", "4", "--out", str(tmp_path / "out")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ctx = zmq.Context()
    try:
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(f"tcp://127.0.0.1:{port}")
        hello = msgpack.packb({"v": VERSION, "t": "HELLO", "name": "w" * (1 << 20),
                               "pid": 1, "host": "h"}, use_bin_type=True)
        for _ in range(3):
            dealer.send(hello)
            time.sleep(0.2)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        ctx.destroy(linger=0)
    assert proc.returncode == 1 and "came within" in err, err[-500:]
    assert len(err) < 2000
    run_dir = next((tmp_path / "out").iterdir())
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["state"] == "failed" and "came within" in meta["reason"]
    assert meta["dropped_messages"] >= 1 and meta["refused_workers"] == 0
    journal = sum(f.stat().st_size for f in (run_dir / "journal").iterdir())
    assert journal < 100_000


@pytest.mark.parametrize("mutate", [{"model": "os.system"}, {"concurrency": "many"},
                                    {"requests": 5}, {"evil": 1}])
def test_a_crafted_job_is_refused_in_one_line(tmp_path, mutate):
    """A coordinator's Job with an unknown model or a wrong type (KeyError: 'os.system',
    TypeError tracebacks in the worker): the worker checks it and refuses in one line."""
    import zmq

    from harness.control.messages import VERSION
    from harness.control.plan import make_job
    from harness.scenario import load_scenario
    path = write(tmp_path, SCENARIO.format(duration="1s", rate=10))
    scenario = load_scenario(path)
    job = {**make_job(scenario, scenario.models[0], "http://127.0.0.1:9", 0, 1).to_wire(),
           **mutate}
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    proc = subprocess.Popen([HARNESS, "worker", "--connect", f"tcp://127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert router.poll(20_000), "the worker never said HELLO"
        identity, _ = router.recv_multipart()

        def send(kind: str, **fields) -> None:
            router.send_multipart([identity, msgpack.packb({"v": VERSION, "t": kind,
                                                            **fields}, use_bin_type=True)])
        send("WELCOME", index=0, lost_after=30.0, run="crafted")
        send("PREPARE", model=0, job=job)
        time.sleep(1.5)
        send("BYE")
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        ctx.destroy(linger=0)
    assert "Traceback" not in err, err
    refused = [line for line in err.splitlines() if "refused a job" in line]
    assert len(refused) == 1, err
