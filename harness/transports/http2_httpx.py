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
or kept up to max_body for a flow step; a request's deadline is checked between reads,
each read bounded by the timeout, so a request takes at most about twice the timeout.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from harness.core.extraction import Answer
from harness.core.failures import (
    BODY_TOO_LARGE,
    TIMEOUT,
    TLS_HANDSHAKE,
    RequestFailed,
    classify_httpx,
)
from harness.core.job import Job
from harness.core.steps import Outgoing
from harness.transports.base import Link, OnHandshake, Transport
from harness.transports.tls import UserContext, user_contexts
from harness.transports.wire import READ_CHUNK, headers_for


class _TlsTimer:
    """httpcore's trace hook, around its TLS handshake: the handshake's time and SSL
    object, for tls_ms and the session counts (transports/tls.py)."""

    def __init__(self) -> None:
        self.started = 0
        self.done: tuple[int, Any] | None = None

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event == "connection.start_tls.started":
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
        timer = _TlsTimer() if job.secure else None
        extensions = {"trace": timer} if timer is not None else {}
        try:
            with group.client().stream(method, url, headers=headers, content=body or None,
                                       extensions=extensions) as resp:
                if timer is not None and timer.done is not None:
                    self._handshake(group, k, *timer.done)
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
        except httpx.HTTPError as exc:
            raise RequestFailed(classify_httpx(exc), str(exc) or type(exc).__name__) from None

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
        if client is not None:
            client.close()
