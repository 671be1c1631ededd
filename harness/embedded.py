"""The embedded mockserver a run starts when the scenario names no target."""

from __future__ import annotations

import ctypes
import json
import signal
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from harness.errors import MockError

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux; elsewhere a no-op,
    and the mock is stopped by the normal path)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class EmbeddedMock:
    def __init__(self, seed: int, processes: int = 1, tls: bool = False) -> None:
        exe = Path(sys.executable).parent / "mockserver"
        cmd = [str(exe) if exe.exists() else sys.executable] + \
            ([] if exe.exists() else ["-m", "mockserver"])
        # Its own session: Ctrl-C on the run must not kill the target mid-run. Its life is
        # tied to ours all the same: the kernel sends it SIGTERM when we die (kill -9).
        self.proc = subprocess.Popen(
            [*cmd, "--host", "127.0.0.1", "--port", "0", "--seed", str(seed),
             "--processes", str(processes), *(["--tls-self-signed"] if tls else [])],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
            preexec_fn=_die_with_parent)
        line = self.proc.stdout.readline().strip() if self.proc.stdout else ""
        if not line.startswith("listening on "):
            self.proc.kill()
            raise MockError(f"embedded mockserver did not start: {line or self.proc.stderr}")
        self.url = line.removeprefix("listening on ")
        self.cert_pem: str | None = None
        self._context: ssl.SSLContext | None = None
        if tls:   # "tls certificate PATH sha256 FINGERPRINT": the one certificate we trust
            cert_line = self.proc.stdout.readline().split() if self.proc.stdout else []
            if len(cert_line) < 3 or cert_line[:2] != ["tls", "certificate"]:
                self.proc.kill()
                raise MockError("embedded mockserver did not print its TLS certificate")
            self.cert_pem = Path(cert_line[2]).read_text()
            self._context = ssl.create_default_context(cadata=self.cert_pem)

    def call(self, path: str, method: str = "GET", body: Any = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10, context=self._context) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise MockError(f"{method} {path}: {exc.code} {exc.read().decode()}") from None

    def configure(self, config: dict[str, Any]) -> None:
        self.call("/_mock/config", "PUT", config)

    def stats(self) -> dict[str, Any]:
        return self.call("/_mock/stats")

    def reset(self) -> None:
        self.call("/_mock/reset", "POST", {})

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
