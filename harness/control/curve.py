"""ZeroMQ CURVE: key pairs for the coordinator and workers, and the authenticator.

`harness keys DIR` writes:
  DIR/coordinator.key, DIR/coordinator.key_secret   the coordinator's pair
  DIR/worker.key, DIR/worker.key_secret             a pair for workers
  DIR/authorized/worker.key                         public keys the coordinator accepts
A worker needs worker.key_secret and coordinator.key; the coordinator needs
coordinator.key_secret and authorized/. Add more workers' public keys to authorized/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from harness.errors import KeyFileError


def make_keys(directory: str | Path) -> list[Path]:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    (d / "authorized").mkdir(exist_ok=True)
    written = []
    for name in ("coordinator", "worker"):
        public, secret = zmq.auth.create_certificates(str(d), name)
        written += [Path(public), Path(secret)]
    shutil.copy(d / "worker.key", d / "authorized" / "worker.key")
    written.append(d / "authorized" / "worker.key")
    for path in written:
        if path.name.endswith("_secret"):
            path.chmod(0o600)
    return written


def _load(path: Path) -> tuple[bytes, bytes | None]:
    try:
        return zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"{path}: {exc}") from None


def worker_keys(directory: str | Path) -> dict[str, bytes]:
    d = Path(directory)
    public, secret = _load(d / "worker.key_secret")
    server, _ = _load(d / "coordinator.key")
    if secret is None:
        raise KeyFileError(f"{d / 'worker.key_secret'}: no secret key in it")
    return {"public": public, "secret": secret, "server": server}


def coordinator_security(directory: str | Path) -> tuple[bytes, ThreadAuthenticator]:
    """The coordinator's secret key and a started authenticator for authorized/."""
    d = Path(directory)
    _, secret = _load(d / "coordinator.key_secret")
    if secret is None:
        raise KeyFileError(f"{d / 'coordinator.key_secret'}: no secret key in it")
    if not (d / "authorized").is_dir():
        raise KeyFileError(f"{d / 'authorized'}: missing (it holds the accepted workers' keys)")
    auth = ThreadAuthenticator(zmq.Context.instance())
    auth.start()
    auth.configure_curve(domain="*", location=str(d / "authorized"))
    return secret, auth
