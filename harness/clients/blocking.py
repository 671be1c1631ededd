"""A blocking HTTP/1.1 client (stdlib http.client) for the sync and thread models: what
plain synchronous Python code uses, with its errors sorted into our kinds.

Keep-alive by default; with `handshake = "per-request"` or `"resume"` every request opens
a new connection (and, over HTTPS, a new TLS handshake, resumed or full).
"""

from __future__ import annotations

import http.client
import ssl
import time
from collections.abc import Callable
from typing import Any

from harness.clients.extraction import Answer
from harness.clients.failures import RESET, TLS_HANDSHAKE, RequestFailed, classify_stdlib
from harness.clients.flows import Outgoing
from harness.clients.tls import UserContext
from harness.clients.wire import headers_for
from harness.control.job import Job


class TimedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPSConnection whose connect times the TLS handshake apart from the TCP connect."""

    handshake_ns = 0

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)   # TCP only
        started = time.perf_counter_ns()
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)
        self.handshake_ns = time.perf_counter_ns() - started


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

    def _connection(self) -> http.client.HTTPConnection:
        if self.conn is None:
            if self.ctx is None:
                self.conn = http.client.HTTPConnection(self.host, self.port,
                                                       timeout=self.timeout)
            else:
                self.conn = TimedHTTPSConnection(self.host, self.port, timeout=self.timeout,
                                                 context=self.ctx)
        return self.conn

    def send(self, k: int) -> tuple[int, int]:
        spec = self.specs[k]
        status, body, _ = self._roundtrip(k, spec.method, self.base + spec.path, spec.body,
                                          self.headers[k])
        return status, len(body)

    def exchange(self, out: Outgoing) -> Answer:
        """A rendered flow step: its answer with headers and body (for extraction and the
        cookie jar)."""
        status, body, headers = self._roundtrip(out.k, out.method, out.path, out.body,
                                                dict(out.headers))
        return Answer(status, body, headers)

    def _roundtrip(self, k: int, method: str, target: str, body: bytes,
                   headers: dict[str, str]) -> tuple[int, bytes, list[tuple[str, str]]]:
        conn = self._connection()
        if conn.sock is None:
            self._connect(conn)
        try:
            conn.request(method, target, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if isinstance(conn, TimedHTTPSConnection):
                self._tls_done(k, conn)
            if resp.will_close or self.fresh:
                self.close()
            return resp.status, data, resp.getheaders()
        except Exception as exc:
            self.close()
            raise RequestFailed(classify_stdlib(exc), str(exc)) from None

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


