"""Where the fast engine's time goes: py-spy samples its load process while the closed
model drives nginx (or the mockserver) from one core, and the top entries by own time are
written down, so the next step on the hot path starts from data."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil

from bench.common import BIN, Section, free_port, mockserver, nginx, pinned
from bench.models import CONCURRENCY, MODELS
from bench.runner import closed, harness_command

TOP = 12


def _py_spy() -> str | None:
    found = BIN / "py-spy"
    return str(found) if found.exists() else shutil.which("py-spy")


def _load_process(harness: psutil.Process, timeout: float = 20.0) -> psutil.Process | None:
    """The run's load process: the worker's spawned child (harness run -> worker -> load),
    not multiprocessing's resource tracker beside it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in harness.children(recursive=True):
            try:
                line = " ".join(proc.cmdline())
                if "spawn_main" in line and "resource_tracker" not in line:
                    return proc
            except psutil.Error:
                continue
        time.sleep(0.2)
    return None


def _profile(url: str, spy: str, seconds: int) -> tuple[Counter, int]:
    text = closed(dict(MODELS)["uvloop-fast"], CONCURRENCY, seconds + 4)
    out = Path(tempfile.mkdtemp(prefix="bench-profile-")) / "samples.txt"
    with subprocess.Popen(harness_command(text, target=url), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL) as run:
        load = _load_process(psutil.Process(run.pid))
        if load is None:
            run.wait(120)
            raise RuntimeError("profile: no load process found")
        time.sleep(2)   # past the warm-up
        subprocess.run([spy, "record", "-p", str(load.pid), "-d", str(seconds), "-r", "250",
                        "-f", "raw", "-o", str(out)], capture_output=True, timeout=seconds + 60)
        run.wait(120)
    own: Counter = Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        total += int(n)
        own[stack.split(";")[-1]] += int(n)
    return own, total


def run(quick: bool) -> list[Section]:
    spy = _py_spy()
    if spy is None:
        return [Section("Profile of the fast engine's hot path", "profile: py-spy not installed",
                        ["py-spy is not installed (pip install py-spy)."], [])]
    seconds = 4 if quick else 10
    port = free_port()
    with nginx(port) as proc:
        if proc is not None:
            own, total = _profile(f"http://127.0.0.1:{port}", spy, seconds)
            target = "nginx"
        else:
            port = free_port()
            with pinned(mockserver(port), port):
                own, total = _profile(f"http://127.0.0.1:{port}", spy, seconds)
            target = "mockserver"
    table = ["| own samples | where (function, file:line) |", "|---:|---|"]
    table += [f"| {100 * n / max(total, 1):.1f}% | `{frame}` |"
              for frame, n in own.most_common(TOP)]
    top = own.most_common(1)[0][0] if own else "-"
    return [Section(f"Profile of the fast engine's hot path (closed model, {target}, one core)",
                    f"profile: top entry {top}", table, [],
                    notes=f"py-spy record of the load process, {seconds} s at 250 Hz, Python "
                          "frames (a system call is charged to the line that made it: "
                          "`transport.write` is the send's syscall, which wrk pays too).")]
