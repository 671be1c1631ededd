"""The `stdlib` transport: blocking HTTP/1.1 through http.client, for the sync and thread
models -- what plain synchronous Python code uses, with its errors sorted into our kinds.

Keep-alive by default; with `handshake = "per-request"` or `"resume"` every request opens
a new connection (and, over HTTPS, a new TLS handshake, resumed or full).

Bounded per request, whatever the target sends: http.client's timeout is per read (an
endless body that keeps bytes coming never times out; issue 23 measured 8-14 GB and the
model aborted), so one deadline from send to the last body byte is kept by a sweeper
thread that shuts the socket of a request past it (as the fast engine's sweeper does), and
the body is read in 64 KiB chunks: counted and dropped, or kept up to `max_body` for a
flow step that extracts from it.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from harness.core.extraction import Answer
from harness.core.failures import (
    BODY_LENGTH,
    BODY_TOO_LARGE,
    MALFORMED,
    RESET,
    TIMEOUT,
    TLS_HANDSHAKE,
    RequestFailed,
    classify_stdlib,
)
from harness.core.job import Job
from harness.core.steps import Outgoing
from harness.transports.base import Link, OnHandshake, Transport
from harness.transports.tls import UserContext, user_contexts
from harness.transports.wire import READ_CHUNK, headers_for


class CheckedResponse(http.client.HTTPResponse):
    """An answer that notes bytes after its announced end arriving with it: http.client
    drops them with its reader, the fast engine and aiohttp say malformed_response."""

    unsolicited = False

    def _close_conn(self) -> None:
        fp = self.fp
        raw = getattr(fp, "raw", None)
        sock = getattr(raw, "_sock", None)
        if fp is not None and sock is not None:
            timeout = sock.gettimeout()
            try:
                sock.settimeout(0)   # what is buffered or already arrived, never a wait
                self.unsolicited = bool(fp.peek(1))
            except (OSError, ValueError):
                pass
            finally:
                try:
                    sock.settimeout(timeout)
                except OSError:
                    pass
        super()._close_conn()


class TimedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPSConnection whose connect times the TLS handshake apart from the TCP connect."""

    handshake_ns = 0

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)   # TCP only
        started = time.perf_counter_ns()
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)
        self.handshake_ns = time.perf_counter_ns() - started


SWEEP_S = 0.05


class Deadlines:
    """One thread per load process that ends every blocking request past its deadline:
    it shuts the request's socket, so the read blocked on it returns at once and the
    client reports a timeout. A request arms its deadline before it sends and disarms it
    after its last body byte."""

    _shared: Deadlines | None = None
    _shared_lock = threading.Lock()

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.live: dict[int, tuple[float, BlockingClient]] = {}
        threading.Thread(target=self._sweep, daemon=True, name="deadlines").start()

    @classmethod
    def shared(cls) -> Deadlines:
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def arm(self, client: BlockingClient, deadline: float) -> None:
        with self.lock:
            self.live[id(client)] = (deadline, client)

    def disarm(self, client: BlockingClient) -> None:
        with self.lock:
            self.live.pop(id(client), None)

    def _sweep(self) -> None:
        while True:
            time.sleep(SWEEP_S)
            now = time.monotonic()
            with self.lock:
                late = [c for d, c in self.live.values() if d <= now]
                for client in late:
                    del self.live[id(client)]
                    client.expire()


class StdlibTransport(Transport):
    """A BlockingClient per user, each with its own keep-alive connection; the process's
    Deadlines sweeper bounds them all."""

    def __init__(self, job: Job, on_handshake: OnHandshake | None = None) -> None:
        super().__init__(job, on_handshake)
        self.contexts = user_contexts(job, job.concurrency)

    def user(self, i: int) -> Link:
        client = BlockingClient(self.job, self.contexts[i], self.on_handshake)
        return Link(client.send, client.exchange, client.close)


class BlockingClient:
    def __init__(self, job: Job, ctx: UserContext | None = None,
                 on_handshake: Callable[[int, int, Any], None] | None = None) -> None:
        self.host, self.port = job.host_port
        self.timeout = job.timeout_s
        self.base = job.base_path
        self.specs = job.specs
        self.ctx, self.on_handshake = ctx, on_handshake
        self.fresh = job.fresh_connections
        # the documented header set (wire.py); http.client adds no Host or
        # Accept-Encoding of its own when they are given
        self.headers = [dict(headers_for(s, self.host, self.port, job.default_port))
                        for s in self.specs]
        self.conn: http.client.HTTPConnection | None = None
        self.max_body = job.max_body
        self.expired = False
        self.deadlines = Deadlines.shared()

    def expire(self) -> None:
        """Past the deadline (the sweeper's thread): shut the socket under the read. The
        base class's shutdown, not SSLSocket's, which drops its SSL object under a reader
        in another thread."""
        self.expired = True
        conn = self.conn
        sock = conn.sock if conn is not None else None
        if sock is not None:
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass   # already closed: the request ended as the deadline came

    def _connection(self) -> http.client.HTTPConnection:
        if self.conn is None:
            if self.ctx is None:
                self.conn = http.client.HTTPConnection(self.host, self.port,
                                                       timeout=self.timeout)
            else:
                self.conn = TimedHTTPSConnection(self.host, self.port, timeout=self.timeout,
                                                 context=self.ctx)
            self.conn.response_class = CheckedResponse
        return self.conn

    def send(self, k: int) -> tuple[int, int]:
        spec = self.specs[k]
        status, size, _ = self._roundtrip(k, spec.method, self.base + spec.path, spec.body,
                                          self.headers[k], keep=False)
        return status, size

    def exchange(self, out: Outgoing, step: Any = None) -> Answer:
        """A rendered flow step: its answer with headers and body (for extraction and the
        cookie jar)."""
        self.kept: list[bytes] = []
        status, size, headers = self._roundtrip(out.k, out.method, out.path, out.body,
                                                dict(out.headers), keep=out.wants_body)
        body, self.kept = b"".join(self.kept), []
        return Answer(status, body, headers, size)

    def _roundtrip(self, k: int, method: str, target: str, body: bytes,
                   headers: dict[str, str], keep: bool
                   ) -> tuple[int, int, list[tuple[str, str]]]:
        """One request: (status, body size, headers); the body is kept (self.kept) only
        when `keep`. One deadline from send to the last body byte."""
        conn = self._connection()
        if conn.sock is None:
            self._connect(conn)
        self.expired = False
        self.deadlines.arm(self, time.monotonic() + self.timeout)
        in_body = False
        try:
            conn.request(method, target, body=body or None, headers=headers)
            resp = conn.getresponse()
            in_body = True
            size = self._read_body(resp, keep)
            if getattr(resp, "unsolicited", False):
                raise RequestFailed(MALFORMED, "bytes after the answer's announced length")
            if isinstance(conn, TimedHTTPSConnection):
                self._tls_done(k, conn)
            if resp.will_close or self.fresh:
                self.close()
            return resp.status, size, resp.getheaders()
        except RequestFailed:
            self.close()
            raise
        except Exception as exc:
            self.close()
            kind = TIMEOUT if self.expired else classify_stdlib(exc)
            if in_body and kind == RESET:
                kind = BODY_LENGTH   # the head came, the body ended short: as every model
            raise RequestFailed(kind, str(exc) or type(exc).__name__) from None
        finally:
            self.deadlines.disarm(self)

    def _read_body(self, resp: http.client.HTTPResponse, keep: bool) -> int:
        """The body in bounded chunks: counted, and kept up to max_body when `keep`."""
        size = 0
        while chunk := resp.read(READ_CHUNK):
            size += len(chunk)
            if keep:
                if size > self.max_body:
                    raise RequestFailed(BODY_TOO_LARGE,
                                        f"answer body over max_body ({self.max_body} bytes)")
                self.kept.append(chunk)
        # read(amt) ends quietly at EOF: a body cut short (a close, or the sweeper's shutdown
        # at the deadline) must not pass for a whole one
        if self.expired:
            raise RequestFailed(TIMEOUT, "no complete response in time")
        if resp.length:
            raise RequestFailed(BODY_LENGTH, f"connection closed {resp.length} bytes short")
        return size

    def _connect(self, conn: http.client.HTTPConnection) -> None:
        """Connect (and shake hands) apart from the request, as the fast and aiohttp
        engines do: a peer hanging up during the TLS handshake is a failed handshake (the
        request never reached HTTP, so it is not sent), not a reset."""
        try:
            conn.connect()
        except Exception as exc:
            self.close()
            kind = classify_stdlib(exc)
            if kind == RESET and isinstance(conn, TimedHTTPSConnection):
                kind = TLS_HANDSHAKE
            raise RequestFailed(kind, str(exc)) from None

    def _tls_done(self, k: int, conn: TimedHTTPSConnection) -> None:
        ssl_object = conn.sock if isinstance(conn.sock, ssl.SSLSocket) else None
        if conn.handshake_ns:
            if self.on_handshake is not None:
                self.on_handshake(k, conn.handshake_ns, ssl_object)
            conn.handshake_ns = 0
            if self.ctx is not None:
                self.ctx.keep_session(ssl_object)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


