"""TLS for every client model: the SSL context a Job asks for, what a handshake cost, and
what was negotiated.

One context per load process, shared by its users (Python's ssl releases the GIL in the
handshake and a context is thread-safe); with `handshake = "resume"` each user has a
context of its own holding that user's last session, as Gatling gives each virtual user
its own TLS state. The context, not each model, supplies the session and the server name:
every library we drive (http.client, asyncio's and uvloop's SSL transports, aiohttp on
top of them, Locust's) opens TLS through `SSLContext.wrap_socket` or `wrap_bio`, so one
override reaches them all.
"""

from __future__ import annotations

import os
import ssl
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from harness.core.job import Job


class UserContext(ssl.SSLContext):
    """An SSLContext that resumes its last session (when `resume`) and names the server
    given in [target.tls].server_name whatever host the URL holds."""

    resume = False
    session_to_resume: ssl.SSLSession | None = None
    server_name: str | None = None
    # aiohttp hands back no connection once a small body is read: the SSL objects this
    # context made are kept (a bounded few) so the model can note each handshake's details
    made: deque[Any] | None = None

    def wrap_socket(self, sock: Any, *args: Any, server_hostname: str | None = None,
                    session: ssl.SSLSession | None = None, **kwargs: Any) -> ssl.SSLSocket:
        return super().wrap_socket(sock, *args, server_hostname=self.server_name or
                                   server_hostname, session=self._session(session), **kwargs)

    def wrap_bio(self, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO,
                 server_side: bool = False, server_hostname: str | None = None,
                 session: ssl.SSLSession | None = None) -> ssl.SSLObject:
        made = super().wrap_bio(incoming, outgoing, server_side,
                                self.server_name or server_hostname, self._session(session))
        if self.made is not None:
            self.made.append(made)
        return made

    def track(self) -> UserContext:
        """Keep the SSL objects made from here on (see `made`)."""
        if self.made is None:
            self.made = deque(maxlen=4096)
        return self

    def take_completed(self) -> Any:
        """The oldest SSL object whose handshake is done and not yet taken, or None."""
        for i, made in enumerate(self.made or ()):
            if made.version() is not None:
                del self.made[i]  # type: ignore[union-attr]
                return made
        return None

    def _session(self, given: ssl.SSLSession | None) -> ssl.SSLSession | None:
        return given or (self.session_to_resume if self.resume else None)

    def keep_session(self, ssl_object: Any) -> None:
        """After a response (a TLS 1.3 ticket arrives after the handshake): the session the
        next connection of this user resumes."""
        if self.resume and ssl_object is not None:
            session = ssl_object.session
            if session is not None:
                self.session_to_resume = session


# what a client offers in ALPN, by the job's http
ALPN = {"1.1": ["http/1.1"], "2": ["h2"], "auto": ["h2", "http/1.1"]}


def client_context(job: Job) -> UserContext | None:
    """The context for this job's target, or None for plain HTTP. Raises ssl.SSLError /
    ValueError on PEM the scenario check let through (reported as a failed model)."""
    if not job.secure:
        return None
    tls = job.tls
    ctx = UserContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(ALPN.get(job.http, ["http/1.1"]))
    ctx.resume = job.handshake == "resume"
    ctx.server_name = tls.get("server_name")
    if tls.get("verify", True):
        if tls.get("ca_pem"):
            ctx.load_verify_locations(cadata=tls["ca_pem"])
        if not tls.get("pinned"):   # the embedded mock's certificate: trusted alone
            ctx.load_default_certs()
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if tls.get("cert_pem") and tls.get("key_pem"):
        _load_client_pair(ctx, tls["cert_pem"], tls["key_pem"])
    return ctx


def negotiated_http(job: Job) -> str:
    """What [target].http = "auto" comes to: "2" when the server's ALPN picks h2 from our
    offer of h2 and http/1.1, else "1.1" (plain http:// too, and a server that cannot be
    reached: the run then fails as it would). One handshake, made before the run."""
    import socket
    ctx = client_context(job)
    if ctx is None:
        return "1.1"
    host, port = job.host_port
    try:
        with socket.create_connection((host, port), timeout=job.timeout_s) as raw, \
                ctx.wrap_socket(raw, server_hostname=ctx.server_name or host) as sock:
            return "2" if sock.selected_alpn_protocol() == "h2" else "1.1"
    except (OSError, ssl.SSLError):
        return "1.1"


def user_contexts(job: Job, users: int) -> list[UserContext | None]:
    """One context per user with `resume` (each holds its own session), else one shared."""
    first = client_context(job)
    if first is None or not first.resume:
        return [first] * users
    return [first] + [client_context(job) for _ in range(users - 1)]


def _load_client_pair(ctx: ssl.SSLContext, cert_pem: str, key_pem: str) -> None:
    """ssl loads a client certificate only from files: written 0600 to a private temporary
    directory, loaded, removed."""
    with tempfile.TemporaryDirectory(prefix="loadharness-tls-") as tmp:
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        write_private(cert, cert_pem)
        write_private(key, key_pem)
        ctx.load_cert_chain(cert, key)


def write_private(path: str, text: str) -> None:
    """A new file only its owner can read (0600, never over an existing one): TLS keys and
    certificates handed to a library that takes files."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


class Handshakes:
    """Counts of one load process's handshakes: how many, how many resumed a session, and
    the versions and ciphers negotiated (for meta.json). Their durations go to the
    Recorder (tls_ms)."""

    def __init__(self) -> None:
        self.done = 0
        self.resumed = 0
        self.versions: dict[str, int] = {}
        self.ciphers: dict[str, int] = {}

    def note(self, ssl_object: Any) -> None:
        self.done += 1
        if ssl_object.session_reused:
            self.resumed += 1
        version = ssl_object.version() or "?"
        cipher = (ssl_object.cipher() or ("?",))[0]
        self.versions[version] = self.versions.get(version, 0) + 1
        self.ciphers[cipher] = self.ciphers.get(cipher, 0) + 1

    def totals(self) -> dict[str, Any]:
        return {"handshakes": self.done, "resumed": self.resumed,
                "versions": dict(self.versions), "ciphers": dict(self.ciphers)}


def merge_tls(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Handshakes.totals() of several processes or workers, added up."""
    out: dict[str, Any] = {"handshakes": 0, "resumed": 0, "versions": {}, "ciphers": {}}
    for part in parts:
        try:   # from the wire (a worker's DONE): a malformed part is left out, never fatal
            add = {"handshakes": int(part.get("handshakes", 0)),
                   "resumed": int(part.get("resumed", 0))}
            named = {key: {str(k): int(v) for k, v in dict(part.get(key, {})).items()}
                     for key in ("versions", "ciphers")}
        except (AttributeError, TypeError, ValueError):
            continue
        for key, n in add.items():
            out[key] += n
        for key, counts in named.items():
            for name, n in counts.items():
                out[key][name] = out[key].get(name, 0) + n
    return out


def handshake_note(rec: Any, counts: Handshakes
                   ) -> Callable[[int, int, Any], None]:
    """What a client calls once a TLS connection is up: the handshake's duration goes to
    the recorder under the request that paid for it (tls_ms), the negotiated details to
    the counts. A lock: thread-model users note handshakes from many threads."""
    lock = threading.Lock()
    append, perf_ns = rec.handshakes.append, time.perf_counter_ns

    def note(k: int, duration_ns: int, ssl_object: Any) -> None:
        append((perf_ns(), k, duration_ns // 1000))
        if ssl_object is not None:
            with lock:
                counts.note(ssl_object)
    return note
