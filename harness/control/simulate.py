"""Scale without the hardware: many lightweight simulated workers against one coordinator.

Each simulated worker is one DEALER socket in this process that speaks the real protocol:
HELLO, READY on PREPARE, then one STATS per second with realistic cells (three request
names, HDR histograms of lognormal latencies), heartbeats, DONE. No load is sent. It keeps
the offline truth (every histogram it sent, merged here) so a test can check that the
coordinator's merge is exact, and it samples the coordinator's CPU while the run lasts.
"""

from __future__ import annotations

import random
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import zmq

from harness.control import messages
from harness.control.messages import HEARTBEAT_S
from harness.stats import IntervalStats, record_batch

NAMES = ("home", "api", "static")

# The scenario a simulated run hands its coordinator: the names the workers report.
SCENARIO = """
[run]
duration = "{seconds}s"
[load]
concurrency = 1
{requests}
[[models]]
model = "asyncio"
"""


def names_for(count: int) -> tuple[str, ...]:
    return NAMES if count == len(NAMES) else tuple(f"r{i}" for i in range(count))


@dataclass
class SimResult:
    truth: dict[tuple[int, str], IntervalStats] = field(default_factory=dict)
    coordinator_cpu_s: float = 0.0
    run_s: float = 0.0
    stats_sent: int = 0
    rss_start_mb: float = 0.0     # the coordinator's, a quarter into the seconds ...
    rss_end_mb: float = 0.0       # ... and when the last second was sent
    end_of_run_s: float = 0.0     # from the last DONE to the coordinator's BYE

    @property
    def cpu_pct(self) -> float:
        return 100.0 * self.coordinator_cpu_s / self.run_s if self.run_s else 0.0


def _pool(size: int, seed: int) -> list[IntervalStats]:
    """Pre-built cells (a worker-second of one request name: 200-1,000 requests each)."""
    rng = np.random.default_rng(seed)
    cells = []
    for _ in range(size):
        cell = IntervalStats()
        n = int(rng.integers(200, 1000))
        record_batch(cell.hist, (rng.lognormal(8.5, 0.6, n)).astype(np.int64) + 1)
        if rng.random() < 0.2:
            cell.errors = {"timeout": int(rng.integers(1, 5))}
        cell.bytes_in = n * 512
        cells.append(cell)
    return cells


def simulate(endpoint: str, workers: int, seconds: int, coordinator_pid: int | None = None,
             seed: int = 1, timeout_s: float = 120.0, names: tuple[str, ...] = NAMES,
             speed: float = 1.0, keep_truth: bool = True) -> SimResult:
    """Simulated workers sending `speed` simulated seconds per real second (10: an hour
    in six minutes, a memory and disk benchmark)."""
    ctx = zmq.Context()   # its own: the socket cap (default 1,023) is set before any socket
    ctx.set(zmq.MAX_SOCKETS, max(ctx.get(zmq.MAX_SOCKETS), workers + 64))
    socks = []
    for _ in range(workers):
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 1000)
        sock.connect(endpoint)
        socks.append(sock)
    pool = _pool(64, seed)
    wires = [cell.to_wire() for cell in pool]
    rng = random.Random(seed)
    result = SimResult()
    poller = zmq.Poller()
    for sock in socks:
        poller.register(sock, zmq.POLLIN)
    for i, sock in enumerate(socks):
        sock.send(messages.encode("HELLO", name=f"sim-{i}", pid=i, host="simulated"))

    model = None
    start_at: float | None = None
    next_second = 0
    done = False
    closed = 0
    last_beat = time.monotonic()
    cpu_start = cpu_end = None
    proc = psutil.Process(coordinator_pid) if coordinator_pid else None
    deadline = time.monotonic() + timeout_s
    ready_sent: set[int] = set()
    done_at: float | None = None
    while closed < workers and time.monotonic() < deadline:
        for sock, _ in poller.poll(50):
            msg = messages.decode(sock.recv())
            if msg["t"] == "PREPARE":
                model = msg["model"]
                sock.send(messages.encode("READY", model=model))
                ready_sent.add(id(sock))
            elif msg["t"] == "START" and start_at is None:
                start_at = time.monotonic() + float(msg["start_in"])
                if proc is not None:
                    t = proc.cpu_times()
                    cpu_start = (t.user + t.system, time.monotonic())
            elif msg["t"] in ("BYE", "REFUSE"):
                closed += 1
                if done_at is not None:
                    result.end_of_run_s = time.monotonic() - done_at
        now = time.monotonic()
        if now - last_beat >= HEARTBEAT_S:
            for sock in socks:
                sock.send(messages.encode("HEARTBEAT"))
            last_beat = now
        due = start_at is not None and now >= start_at + (next_second + 1) / speed
        if due and not done:
            k = next_second
            for sock in socks:  # one STATS per worker per second, like a real worker
                cells = []
                for name in names:
                    j = rng.randrange(len(pool))
                    cells.append([k, name, wires[j]])
                    if keep_truth:  # 188 KB a cell: an hour of 50 names would not fit
                        result.truth.setdefault((k, name), IntervalStats()).add(pool[j])
                sock.send(messages.encode("STATS", model=model, cells=cells, sent=0,
                                          seq=k + 1))
                result.stats_sent += 1
            next_second += 1
            if next_second == seconds // 4 and proc is not None:  # past the start-up
                result.rss_start_mb = proc.memory_info().rss / 2**20
            if next_second >= seconds:
                if proc is not None and cpu_start is not None:
                    t = proc.cpu_times()
                    cpu_end = (t.user + t.system, time.monotonic())
                    result.rss_end_mb = proc.memory_info().rss / 2**20
                done_at = time.monotonic()
                for sock in socks:
                    sock.send(messages.encode("DONE", model=model, error="", totals={
                        "sent": 0, "late": 0, "skipped": 0, "cpu_s": 0.0, "rss_peak": 0,
                        "elapsed_s": float(seconds)}))
                done = True
    if cpu_start and cpu_end:
        result.coordinator_cpu_s = cpu_end[0] - cpu_start[0]
        result.run_s = cpu_end[1] - cpu_start[1]
    for sock in socks:
        sock.close()
    ctx.term()
    return result


def against_coordinator(workers: int, seconds: int, out_dir: Path, harness_exe: str,
                        names: int = len(NAMES), speed: float = 1.0,
                        keep_truth: bool = True
                        ) -> tuple[SimResult, Path, int]:
    """Start a real `harness coordinator` process and run simulated workers against it.
    Returns the simulation, the run directory and the coordinator's exit code."""
    path = out_dir / "sim.toml"
    chosen = names_for(names)
    path.write_text(SCENARIO.format(seconds=seconds, requests="".join(
        f'[[requests]]\nname = "{n}"\npath = "/{n}"\n' for n in chosen)))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        endpoint = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    # The target is never contacted: simulated workers send no load.
    coord = subprocess.Popen([harness_exe, "coordinator", str(path), "--bind", endpoint,
                              "--expect-workers", str(workers), "--target",
                              "http://127.0.0.1:9", "--out", str(out_dir), "--quiet"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    result = simulate(endpoint, workers, seconds, coordinator_pid=coord.pid, names=chosen,
                      speed=speed, timeout_s=120.0 + seconds / speed,
                      keep_truth=keep_truth)
    out, _ = coord.communicate(timeout=120)
    run_dir = Path(out.strip().splitlines()[-1]) if out.strip() else out_dir
    return result, run_dir, coord.returncode
