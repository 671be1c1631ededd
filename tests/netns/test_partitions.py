"""Network cuts between the coordinator and its workers (issue 13), in network namespaces:
each worker host runs its own mockserver on its loopback (the same port in each), so a cut
touches only the control channel and the targets' counts stay exact. A cut is the
worker's bridge port set down: packets dropped both ways, TCP backs off, as with
iptables DROP. Needs root and iproute2; skipped otherwise."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pandas as pd

from tests.netns.test_compose_netns import BIN, Network, need_root, sh, terminate

MOCK_PORT = 8089
SCENARIO = """
[run]
duration = "{duration}"
timeout = "2s"
[target]
url = "http://127.0.0.1:{port}"
[load]
mode = "open"
rate = 200
concurrency = 20
[[requests]]
name = "home"
path = "/"
[[models]]
model = "asyncio"
engine = "fast"
"""


def mock_count(net: Network, host: str, work: Path) -> int:
    probe = net.run(host, [sys.executable, "-c",
                           "import urllib.request,sys;sys.stdout.write(urllib.request.urlopen("
                           f"'http://127.0.0.1:{MOCK_PORT}/_mock/stats').read().decode())"], work)
    return json.loads(probe.communicate(timeout=30)[0])["requests_total"]


def run_with_cuts(tmp_path: Path, duration: int, cuts: list[tuple[str, float, float]]
                  ) -> tuple[dict, int, pd.DataFrame, str]:
    """A run of `duration` s with two workers; each cut is (worker, start s, length s)."""
    need_root()
    work = tmp_path / "app"
    work.mkdir()
    (work / "s.toml").write_text(SCENARIO.format(duration=f"{duration}s", port=MOCK_PORT))
    net = Network(["coordinator", "worker1", "worker2"])
    procs = []
    try:
        for host in ("worker1", "worker2"):
            mock = net.run(host, [str(BIN / "mockserver"), "--port", str(MOCK_PORT)], work)
            procs.append(mock)
            assert mock.stdout.readline().startswith("listening on")
        coord = net.run("coordinator", [str(BIN / "harness"), "coordinator", "s.toml",
                                        "--bind", "tcp://0.0.0.0:5555", "--expect-workers",
                                        "2", "--out", "results", "--insecure"], work)
        procs.append(coord)
        time.sleep(1)
        for host in ("worker1", "worker2"):
            procs.append(net.run(host, [str(BIN / "harness"), "worker", "--connect",
                                        "tcp://coordinator:5555", "--name", host], work))
        assert coord.stdout.readline().startswith("run directory: ")
        t0 = time.monotonic() + 1.0  # about when the load starts (READY, START)

        def cut(host: str, at: float, length: float) -> None:
            port = net.port(host)
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            sh("ip", "link", "set", port, "down")
            time.sleep(length)
            sh("ip", "link", "set", port, "up")
        threads = [threading.Thread(target=cut, args=c) for c in cuts]
        for t in threads:
            t.start()
        out, err = coord.communicate(timeout=120)
        for t in threads:
            t.join()
        run_dir = work / out.strip().splitlines()[-1]
        meta = json.loads((run_dir / "meta.json").read_text())
        counted = sum(mock_count(net, h, work) for h in ("worker1", "worker2"))
        ts = pd.read_csv(run_dir / "timeseries.csv")
        return meta, counted, ts, err
    finally:
        terminate(procs)
        net.close()


def test_one_second_cut_loses_nothing(tmp_path):
    meta, counted, ts, err = run_with_cuts(tmp_path, 8, [("worker1", 3.0, 1.0)])
    assert not meta["partial"], err
    assert not any(w["lost"] or w["gaps"] for w in meta["workers"]), meta["workers"]
    assert meta["requests_sent"] == counted


def test_five_second_cut_is_lost_then_readmitted(tmp_path):
    meta, counted, ts, err = run_with_cuts(tmp_path, 14, [("worker1", 3.0, 5.0)])
    w1 = next(w for w in meta["workers"] if w["name"] == "worker1")
    assert w1["gaps"] and not w1["lost"], (w1, err)
    assert "re-admitted" in err
    assert not meta["partial"], err
    assert abs(meta["requests_sent"] - counted) <= 100, (meta["requests_sent"], counted)
    measured = int(ts[ts["name"] == "Aggregated"]["requests"].sum())
    assert counted - 100 <= measured <= counted


def test_every_worker_cut_off_still_gives_sane_numbers(tmp_path):
    meta, counted, ts, err = run_with_cuts(tmp_path, 10, [("worker1", 3.0, 3.0),
                                                          ("worker2", 3.0, 3.0)])
    agg = ts[ts["name"] == "Aggregated"]
    assert set(agg["second"]) == set(range(10)), sorted(agg["second"])
    assert (agg["rps"] < 400).all() and (agg["rps"] > 0).all(), agg["rps"].tolist()
    assert abs(meta["requests_sent"] - counted) <= 100
