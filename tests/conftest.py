"""Shared fixtures: real mockserver processes started the way a user starts them."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# `make test` runs the suite in two parts. The modules whose assertions read rates,
# latencies, significance or the client's signals (marked `measure` here) run one after
# another with nothing of the suite beside them: two at a time, a neighbour's load made
# the generator honestly client-bound and their answers moved (tried: 7 of 553 failed).
# The rest run on two pytest-xdist workers, a module to a worker (--dist loadfile).
MEASURE = {"test_capacity", "test_mock_queue", "test_honest_numbers", "test_run_models",
           "test_ci_gate", "test_compare", "test_autostop", "test_many_connections",
           "test_scale"}


def pytest_itemcollected(item: pytest.Item) -> None:
    module = getattr(item, "module", None)
    if module is not None and module.__name__.rsplit(".", 1)[-1] in MEASURE:
        item.add_marker(pytest.mark.measure)


_MADE: dict[str, object] = {}


def made_once(key: str, make: Callable[[], T]) -> T:
    """A module fixture's costly result (minutes of runs), made once per test process:
    should a module's tests ever be split or interleaved with another's, its fixture is
    not made again (the hostile-target runs were made twice, 94 s each, when xdist sent
    one module's tests to both workers)."""
    if key not in _MADE:
        _MADE[key] = make()
    return _MADE[key]  # type: ignore[return-value]


@dataclass
class Mock:
    proc: subprocess.Popen[str]
    host: str
    port: int
    scheme: str = "http"
    ca_file: str | None = None   # what a client trusts to reach an https mock
    cert_line: str = ""          # --tls-self-signed: "tls certificate PATH sha256 FP"
    client_cert: tuple[str, str] | None = None   # (cert, key) a mutual-TLS mock asks for
    check_name: bool = True      # False: its certificate names another host than ours

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.ca_file is None:
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        context.check_hostname = self.check_name
        if self.client_cert:
            context.load_cert_chain(*self.client_cert)
        return context

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def get_json(self, path: str, method: str = "GET", body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, dict]:
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10, context=self.ssl_context()) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def stats(self) -> dict:
        return self.get_json("/_mock/stats")[1]

    def stop(self, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


def start_mockserver(*args: str, host: str = "127.0.0.1", timeout: float = 20,
                     ca_file: str | None = None) -> Mock:
    """Start `mockserver --port 0 ...` and wait for its `listening on` line (and, for
    --tls-self-signed, the certificate line after it, whose file a client then trusts)."""
    proc = subprocess.Popen([str(BIN / "mockserver"), "--host", host, "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith(("listening on http://", "listening on https://")):
        proc.kill()
        raise RuntimeError(f"mockserver did not start: {line!r} {proc.stderr.read()}")
    assert time.monotonic() < deadline
    port = int(line.strip().rsplit(":", 1)[1])
    scheme = line.split("://")[0].rsplit(" ", 1)[1]
    cert_line = ""
    if "--tls-self-signed" in args:
        cert_line = proc.stdout.readline().strip()
        ca_file = ca_file or cert_line.split()[2]
    return Mock(proc, host, port, scheme, ca_file, cert_line)


@pytest.fixture
def mock() -> Iterator[Mock]:
    server = start_mockserver("--seed", "7")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shared_mock() -> Iterator[Mock]:
    server = start_mockserver("--seed", "11")
    yield server
    server.stop()


def raw_exchange(port: int, data: bytes, *, timeout: float = 5.0, read_until_close: bool = True,
                 expect: int | None = None) -> bytes:
    """Send raw bytes and read what comes back: until close, or until `expect` bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass   # closed on us mid-write (a flood cut short): what it said is still read
        chunks = []
        total = 0
        while True:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if expect is not None and total >= expect and not read_until_close:
                break
        return b"".join(chunks)



HARNESS = str(BIN / "harness")


def run_harness(*args: str, timeout: float = 120, env: dict | None = None
                ) -> subprocess.CompletedProcess[str]:
    """`harness ARGS...` as a user runs it; returns the completed process."""
    import os
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([HARNESS, *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env)


def write_scenario(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


def load_meta(run_dir: str) -> dict:
    return json.loads((Path(run_dir) / "meta.json").read_text())
