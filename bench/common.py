"""Benchmark plumbing: pinned processes, wrk runs, and the docs/benchmarks.md writer.

Two cores: the target is pinned to core 0, the load generator to core 1, so they never
fight for one core and ratios measured in the same run are comparable.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SERVER_CORE, CLIENT_CORE = "0", "1"


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def taskset(core: str) -> list[str]:
    return ["taskset", "-c", core] if shutil.which("taskset") and os.cpu_count() > 1 else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


@contextlib.contextmanager
def pinned(cmd: list[str], port: int, core: str = SERVER_CORE) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(taskset(core) + cmd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=raise_nofile)
    try:
        wait_port(port)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def mockserver(port: int, *extra: str) -> list[str]:
    return [str(BIN / "mockserver"), "--port", str(port), *extra]


def aiohttp_app(port: int) -> list[str]:
    return [sys.executable, str(ROOT / "bench" / "aiohttp_app.py"), str(port)]


def _nginx_exe() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                     else None)


def nginx_available() -> bool:
    return _nginx_exe() is not None


@contextlib.contextmanager
def nginx(port: int, server: str = 'location / { return 200 "ok"; }', listen: str = "",
          http: str = "") -> Iterator[subprocess.Popen | None]:
    """nginx, one worker, pinned to the server core, serving `server` (its locations) on
    `port` (`listen`: more for the listen line, e.g. "ssl"; `http`: more http-level
    lines); None when nginx is not installed."""
    exe = _nginx_exe()
    if exe is None:
        yield None
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
    conf = tmp / "nginx.conf"
    # keepalive_requests raised: the default closes a keep-alive connection every 1,000
    # requests, which would charge nginx reconnects that the other targets do not pay.
    conf.write_text(f"""
worker_processes 1; daemon off; pid {tmp}/nginx.pid; error_log {tmp}/error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 100000000; keepalive_timeout 60s;
  client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp};
  uwsgi_temp_path {tmp}; scgi_temp_path {tmp}; {http}
  server {{ listen 127.0.0.1:{port} {listen}; {server} }} }}
""")
    try:
        with pinned([exe, "-c", str(conf), "-p", str(tmp)], port) as proc:
            yield proc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_1k: float = 0.0   # wrk's own CPU (user + system) per 1,000 requests


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    assert m, text
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def wrk(url: str, connections: int, seconds: float, threads: int = 1) -> WrkResult:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(taskset(CLIENT_CORE) + ["wrk", "--latency", f"-t{threads}",
                         f"-c{connections}", f"-d{int(seconds)}s", url],
                         capture_output=True, text=True, preexec_fn=raise_nofile,
                         timeout=seconds + 60).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return WrkResult(rps, p50, p99, 1e6 * cpu / max(total, 1))


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def versions(*names: str) -> str:
    parts = [f"Python {platform.python_version()}"]
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            parts.append(f"{name} {metadata.version(name)}")
    return ", ".join(parts)


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


@dataclass
class Section:
    """One benchmark's outcome: a ratio line for the console, a table for the docs."""

    title: str
    ratio_line: str
    table: list[str]
    goals: list[tuple[str, bool]] = field(default_factory=list)
    notes: str = ""
    plot: str = ""  # a PNG under docs/, relative to docs/benchmarks.md

    def markdown(self) -> str:
        lines = [f"## {self.title}", "", self.ratio_line, "", *self.table, ""]
        if self.plot:
            lines += [f"![{self.title}]({self.plot})", ""]
        if self.goals:
            lines += ["Goals:", ""]
            lines += [f"- {'met' if ok else 'MISSED'}: {goal}" for goal, ok in self.goals]
            lines.append("")
        if self.notes:
            lines += [self.notes, ""]
        return "\n".join(lines)


def plot_lines(name: str, title: str, x: list[float], series: dict[str, list[float]], *,
               xlabel: str, ylabel: str, logx: bool = False, logy: bool = False) -> str:
    """One line chart written to docs/bench/NAME.png; returns the path the markdown links.
    Drawn with matplotlib's Agg backend: no display needed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=100)
    for label, ys in series.items():
        ax.plot(x, ys, marker="o", label=label)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = ROOT / "docs" / "bench" / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return f"bench/{name}.png"


def write_report(sections: list[Section], mode: str) -> Path:
    """docs/benchmarks.md: the sections just measured replace those of the same title; the
    others stay as they were (each says when it was measured), so `--only` refreshes part
    of the file without losing the rest."""
    path = ROOT / "docs" / "benchmarks.md"
    stamp = datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')
    head = [
        "# Benchmarks",
        "",
        "Written by `make bench`. Every ratio compares numbers measured side by side in one"
        " run; the machine is shared, so absolute numbers move between runs. Each section"
        " says when (and in which mode) it was measured.",
        "",
        f"- last written: {stamp}",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}",
        f"- versions: {versions('uvloop', 'httptools', 'aiohttp', 'locust', 'pyzmq')}",
        f"- pinning: target on core {SERVER_CORE}, load generator on core {CLIENT_CORE}",
        "",
    ]
    kept: dict[str, str] = {}
    if path.exists():
        for chunk in path.read_text().split("\n## ")[1:]:
            kept[chunk.splitlines()[0].strip()] = "## " + chunk.rstrip() + "\n"
    for section in sections:
        body = section.markdown().split("\n", 1)
        kept[section.title] = f"{body[0]}\n\n_measured {stamp}, {mode} mode_\n{body[1]}"
    path.write_text("\n".join(head) + "\n" + "\n".join(kept.values()))
    return path
