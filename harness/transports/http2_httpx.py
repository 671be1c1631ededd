"""The `httpx-h2` transport: HTTP/2 for the sync and thread models, through httpx
(`http2=True`, `http1=False`: httpcore over h2; h2c by prior knowledge on http://, ALPN
`h2` alone over TLS, so no request silently falls back to HTTP/1.1).

One httpx.Client per `streams_per_connection` users, held to one connection: the group's
threads multiplex their requests on it as concurrent streams (httpcore locks the
connection per frame, not per request). httpcore resends a request a GOAWAY left above
its last stream id on a new connection itself. The client's default headers are cleared:
each request carries exactly the documented header set (wire.py), which httpcore turns
into the same HTTP/2 header list as the fast engine's (the same pseudo-header order,
Host as :authority). Bodies are read in bounded chunks (iter_raw: no decoding), counted,
or kept up to max_body for a flow step; a request's deadline is the stdlib transport's
sweeper's (it shuts the socket under a read past it: a server sending PINGs for ever
never lets httpx's per-read timeout fire).
"""

from __future__ import annotations

import socket
import time
from typing import Any

import h2.exceptions
import httpx

from harness.core.extraction import Answer
from harness.core.failures import (
    BODY_TOO_LARGE,
    MALFORMED,
    TIMEOUT,
    TLS_HANDSHAKE,
    RequestFailed,
    classify_httpx,
)
from harness.core.job import Job
from harness.core.steps import Outgoing
from harness.transports.base import Link, OnHandshake, Transport
from harness.transports.http1_stdlib import Deadlines
from harness.transports.tls import UserContext, user_contexts
from harness.transports.wire import READ_CHUNK, headers_for


class _Trace:
    """httpcore's trace hook for one request: the connection's socket as it is made (the
    deadline sweeper shuts it under a read that would not end), and the TLS handshake's
    time and SSL object, for tls_ms and the session counts (transports/tls.py)."""

    def __init__(self, group: _Group) -> None:
        self.group = group
        self.started = 0
        self.done: tuple[int, Any] | None = None

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.complete":
            stream = info.get("return_value")
            if stream is not None:
                self.group.sock = stream.get_extra_info("socket")
        elif event == "connection.start_tls.started":
            self.started = time.perf_counter_ns()
        elif event == "connection.start_tls.complete" and self.started:
            stream = info.get("return_value")
            ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
            self.done = (time.perf_counter_ns() - self.started, ssl_object)
            self.started = 0


class HttpxTransport(Transport):
    def __init__(self, job: Job, on_handshake: OnHandshake | None = None) -> None:
        super().__init__(job, on_handshake)
        host, port = job.host_port
        self.origin = job.url.removesuffix(job.base_path) if job.base_path else job.url
        self.fixed = [(s.method, job.url + s.path,
                       headers_for(s, host, port, job.default_port), s.body)
                      for s in job.specs]
        self.contexts = user_contexts(job, job.concurrency)
        self.groups: list[_Group] = []
        self.deadlines = Deadlines.shared()   # the stdlib transport's sweeper: one a process

    def user(self, i: int) -> Link:
        job = self.job
        per = 1 if job.fresh_connections else job.streams
        if i % per == 0:
            self.groups.append(_Group(job, self.contexts[i]))
        group, fixed, origin = self.groups[-1], self.fixed, self.origin

        def send(k: int) -> tuple[int, int]:
            method, url, headers, body = fixed[k]
            status, size, _, _ = self.roundtrip(group, k, method, url, headers, body)
            return status, size

        def exchange(out: Outgoing, step: Any = None) -> Answer:
            status, size, body, got = self.roundtrip(group, out.k, out.method,
                                                     origin + out.path, out.headers,
                                                     out.body, out.wants_body)
            return Answer(status, body, got, size)
        return Link(send, exchange, group.close if job.fresh_connections else _nothing)

    def roundtrip(self, group: _Group, k: int, method: str, url: str,
                  headers: Any, body: bytes, keep: bool = False
                  ) -> tuple[int, int, bytes, list[tuple[str, str]]]:
        job = self.job
        deadline = time.monotonic() + job.timeout_s
        trace = _Trace(group)
        group.expired = False
        self.deadlines.arm(group, deadline)
        try:
            with group.client().stream(method, url, headers=headers, content=body or None,
                                       extensions={"trace": trace}) as resp:
                if trace.done is not None:
                    self._handshake(group, k, *trace.done)
                size, kept = 0, []
                for chunk in resp.iter_raw(READ_CHUNK):
                    size += len(chunk)
                    if keep:
                        if size > job.max_body:
                            raise RequestFailed(BODY_TOO_LARGE, "answer body over "
                                                f"max_body ({job.max_body} bytes)")
                        kept.append(chunk)
                    if time.monotonic() > deadline:
                        raise RequestFailed(TIMEOUT, "no complete response in time")
                got = [(name.decode("latin-1"), v.decode("latin-1"))
                       for name, v in resp.headers.raw]
            if job.fresh_connections:
                group.close()   # per-request or resume: the next request shakes hands again
            return resp.status_code, size, b"".join(kept), got
        except RequestFailed:
            group.close()
            raise
        except (httpx.HTTPError, h2.exceptions.ProtocolError) as exc:
            group.close()   # the connection is in no state to be used again
            if group.expired:
                raise RequestFailed(TIMEOUT, "no complete response in time") from None
            kind = classify_httpx(exc) if isinstance(exc, httpx.HTTPError) else MALFORMED
            raise RequestFailed(kind, str(exc) or type(exc).__name__) from None
        finally:
            self.deadlines.disarm(group)

    def _handshake(self, group: _Group, k: int, took: int, ssl_object: Any) -> None:
        if ssl_object is not None and ssl_object.selected_alpn_protocol() != "h2":
            raise RequestFailed(TLS_HANDSHAKE, "the server did not choose HTTP/2 in ALPN "
                                f"(it chose {ssl_object.selected_alpn_protocol()!r})")
        if self.on_handshake is not None:
            self.on_handshake(k, took, ssl_object)
        if group.ctx is not None:
            group.ctx.keep_session(ssl_object)

    def __exit__(self, *exc: object) -> None:
        for group in self.groups:
            group.close()


def _nothing() -> None:
    return None


class _Group:
    """Users sharing one httpx.Client held to one connection; with fresh connections
    (handshake per-request or resume) a user alone, its client new for each request."""

    def __init__(self, job: Job, ctx: UserContext | None) -> None:
        self.job, self.ctx = job, ctx
        self._client: httpx.Client | None = None
        self.sock: Any = None      # its connection's socket, once made
        self.expired = False       # the deadline sweeper shut it under a request

    def expire(self) -> None:
        """Past the deadline (the sweeper's thread): shut the socket under the read --
        a server that keeps sending PINGs, or anything but an answer, never lets a read
        time out by itself."""
        self.expired = True
        sock = self.sock
        if sock is not None:
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                http1=False, http2=True, verify=self.ctx if self.ctx is not None else True,
                timeout=httpx.Timeout(self.job.timeout_s), follow_redirects=False,
                trust_env=False,   # no proxy, .netrc or SSL_CERT_FILE from the environment
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))
            self._client.headers.clear()   # ours alone: no python-httpx User-Agent, no gzip
        return self._client

    def close(self) -> None:
        client, self._client = self._client, None
        self.sock = None
        if client is not None:
            client.close()
