"""HTTP/2: what it costs each model, beside h2load (nghttp2's reference load tool).

- The fast engine over h2 against nginx (TLS + ALPN, 10 connections x 10 streams) beside
  h2load with the same shape, and the client CPU per request of each model over HTTP/2
  beside the same model over HTTP/1.1 (50 connections, nginx TLS): the cost table.
- The mockserver's h2 against nginx's h2 under h2load (h2c, 10 x 10), and the mock's h2
  against its own HTTP/1.1 (h2load --h1, 100 connections).

Target on core 0, load on core 1. Client CPU is each process's own (user + system): ours
from meta.json (load processes), h2load's from its rusage.
"""

from __future__ import annotations

import re
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.common import (
    CLIENT_CORE,
    Section,
    free_port,
    mockserver,
    nginx,
    nginx_available,
    pinned,
    raise_nofile,
    taskset,
)
from bench.runner import harness_run
from mockserver.tls import self_signed

CONNECTIONS, STREAMS = 10, 10
MODELS = [("uvloop-fast", 'model = "uvloop"\nengine = "fast"', True),
          ("asyncio-fast", 'model = "asyncio"\nengine = "fast"', True),
          ("thread", 'model = "thread"', False),
          ("sync", 'model = "sync"', False)]


def have_h2load() -> bool:
    return shutil.which("h2load") is not None


def h2load(url: str, clients: int, streams: int, seconds: float, h1: bool = False
           ) -> tuple[float, float]:
    """(requests/s, client CPU ms per 1,000 requests) of h2load on the client core."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(taskset(CLIENT_CORE) + [
        "h2load", "-c", str(clients), "-m", str(streams), "-D", str(int(seconds)),
        "-t", "1", *(["--h1"] if h1 else []), url],
        capture_output=True, text=True, preexec_fn=raise_nofile, timeout=seconds + 60).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    rps = float(re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", out).group(1))
    done = int(re.search(r"requests: \d+ total, \d+ started, (\d+) done", out).group(1))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return rps, 1e6 * cpu / max(done, 1)


def _scenario(model: str, seconds: float, users: int, http: str, streams: int,
              ca: Path | None) -> str:
    tls = f'[target.tls]\nca = "{ca}"\n' if ca else ""
    return (f'[run]\nduration = "{seconds}s"\nwarmup = "0.5s"\nworkers = 1\n'
            f'[target]\nhttp = "{http}"\n{tls}'
            f"[load]\nconcurrency = {users}\nstreams_per_connection = {streams}\n"
            f'[[requests]]\nname = "get"\npath = "/"\n[[models]]\n{model}\n')


def _ours(url: str, model: str, seconds: float, users: int, http: str, streams: int,
          ca: Path | None) -> tuple[float, float]:
    result = harness_run(_scenario(model, seconds, users, http, streams, ca), target=url)
    label = next(iter(result.meta["models"]))
    return float(result.agg()["rps"]), result.cpu_ms_per_1k(label)


def _nginx_h2(port: int, cert: Path, key: Path):
    return nginx(port, f'ssl_certificate {cert}; ssl_certificate_key {key}; '
                       'location / { return 200 "ok"; }', listen="ssl http2")


def client_cost(seconds: float, cert: Path, key: Path) -> Section:
    """The fast engine over h2 beside h2load, and every model's CPU per request over
    HTTP/2 beside its own over HTTP/1.1, against nginx with TLS."""
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    rows: dict[str, dict[str, float]] = {}
    with _nginx_h2(port, cert, key):
        ref = h2load(url, CONNECTIONS, STREAMS, seconds) if have_h2load() else (0.0, 0.0)
        for label, model, shares in MODELS:
            users = CONNECTIONS * STREAMS if shares else CONNECTIONS
            h2 = _ours(url, model, seconds, users, "2", STREAMS if shares else 1, cert)
            h1 = _ours(url, model, seconds, 50 if shares else CONNECTIONS, "1.1", 1, cert)
            rows[label] = {"h2": h2[0], "h2 cpu": h2[1], "h1": h1[0], "h1 cpu": h1[1]}
    table = ["| client | HTTP/2 requests/s | HTTP/2 CPU ms / 1k | HTTP/1.1 requests/s | "
             "HTTP/1.1 CPU ms / 1k | HTTP/2 CPU / HTTP/1.1 CPU |",
             "|---|---:|---:|---:|---:|---:|"]
    table.append(f"| h2load ({CONNECTIONS} x {STREAMS}, reference) | {ref[0]:,.0f} | "
                 f"{ref[1]:.1f} | - | - | - |")
    for label, r in rows.items():
        table.append(f"| {label} | {r['h2']:,.0f} | {r['h2 cpu']:.1f} | {r['h1']:,.0f} | "
                     f"{r['h1 cpu']:.1f} | {r['h2 cpu'] / max(r['h1 cpu'], 1e-9):.2f}x |")
    fast = rows["uvloop-fast"]["h2"]
    ratio = fast / ref[0] if ref[0] else 0.0
    goals = [(f"fast engine over h2 >= 0.3x h2load ({ratio:.2f}x)", ratio >= 0.3)] \
        if ref[0] else []
    return Section("HTTP/2: what each model costs against nginx (TLS + ALPN)",
                   f"HTTP/2: fast engine / h2load = {ratio:.2f}x", table, goals,
                   notes=f"The fast engine's models and h2load: {CONNECTIONS} connections x "
                         f"{STREAMS} streams ({CONNECTIONS * STREAMS} users); over HTTP/1.1 "
                         "the fast engine has 50 connections. sync and thread send through "
                         f"httpx, one user a connection ({CONNECTIONS} threads; sync one). "
                         f"{seconds:g} s each.")


def mock_capacity(seconds: float) -> Section:
    """The mockserver's h2 beside nginx's h2 (h2c) and beside its own HTTP/1.1, all under
    h2load."""
    rows: dict[str, float] = {}
    port = free_port()
    with pinned(mockserver(port), port):
        rows["mockserver h2c"] = h2load(f"http://127.0.0.1:{port}/", CONNECTIONS, STREAMS,
                                        seconds)[0]
        rows["mockserver HTTP/1.1 (h2load --h1)"] = h2load(
            f"http://127.0.0.1:{port}/", 100, 1, seconds, h1=True)[0]
    if nginx_available():
        port = free_port()
        with nginx(port, listen="http2"):
            rows["nginx h2c"] = h2load(f"http://127.0.0.1:{port}/", CONNECTIONS, STREAMS,
                                       seconds)[0]
    table = ["| target | requests/s under h2load |", "|---|---:|"]
    table += [f"| {name} | {rps:,.0f} |" for name, rps in rows.items()]
    mock = rows["mockserver h2c"]
    own = mock / rows["mockserver HTTP/1.1 (h2load --h1)"]
    line = f"HTTP/2 mockserver: its h2 / its HTTP/1.1 = {own:.2f}x"
    goals = []
    if "nginx h2c" in rows:
        ratio = mock / rows["nginx h2c"]
        line += f", mockserver h2 / nginx h2 = {ratio:.2f}x"
        goals.append((f"mockserver h2 >= 0.3x nginx h2 ({ratio:.2f}x)", ratio >= 0.3))
    return Section("HTTP/2: the mockserver's h2 under h2load", line, table, goals,
                   notes=f"h2c by prior knowledge, {CONNECTIONS} connections x {STREAMS} "
                         f"streams; HTTP/1.1: 100 connections. {seconds:g} s each.")


def run(quick: bool) -> list[Section]:
    if not have_h2load():
        return [Section("HTTP/2: what each model costs against nginx (TLS + ALPN)",
                        "HTTP/2: skipped (h2load not installed: apt-get install "
                        "nghttp2-client)", [])]
    seconds = 3 if quick else 10
    with tempfile.TemporaryDirectory(prefix="bench-h2-") as tmp:
        cert, key = self_signed(Path(tmp), "127.0.0.1")
        sections = [mock_capacity(seconds)]
        if nginx_available():
            sections.insert(0, client_cost(seconds, cert, key))
        return sections
