"""The `aiohttp` transport: the lesson's library, what asyncio user code sends with.

One ClientSession per load process, shared by the users (its connector holds one
connection per user), told to send our documented header set and nothing of its own, to
follow no redirect, to resend nothing, to inflate nothing and to keep no cookies (a flow
keeps its own jar, as in every model).
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp
from yarl import URL

from harness.core.extraction import Answer
from harness.core.failures import BODY_TOO_LARGE, TIMEOUT, RequestFailed, classify_aiohttp
from harness.core.job import Job
from harness.core.steps import Outgoing
from harness.transports.base import Link, OnHandshake, Transport
from harness.transports.tls import UserContext, user_contexts
from harness.transports.wire import READ_CHUNK, headers_for


class AiohttpTransport(Transport):
    def __init__(self, job: Job, on_handshake: OnHandshake | None = None) -> None:
        super().__init__(job, on_handshake)
        host, port = job.host_port
        # the documented header set (wire.py), given in full so aiohttp adds none of its
        # own (it would send Accept-Encoding: gzip and its User-Agent)
        self.headers = [headers_for(s, host, port, job.default_port) for s in job.specs]
        self.contexts = user_contexts(job, job.concurrency)
        for ctx in {id(c): c for c in self.contexts if c is not None}.values():
            ctx.track()
        self.origin = job.url.removesuffix(job.base_path) if job.base_path else job.url
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AiohttpTransport:
        job = self.job
        connector = aiohttp.TCPConnector(limit=job.concurrency, limit_per_host=0,
                                         force_close=job.fresh_connections)
        # our own cookie jar (flows.CookieJar) is the only one, as in every other model
        self.session = session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=job.timeout_s),
            auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
            trace_configs=[connection_timer()] if job.secure else None,
            skip_auto_headers=("Content-Type",))
        # aiohttp silently resends an idempotent request once when a kept-alive
        # connection drops (aio-libs/aiohttp#10790), hiding the reset and sending a
        # request nobody counted. No public switch exists; aiohttp's own test client
        # turns it off the same way.
        if hasattr(session, "_retry_connection"):
            session._retry_connection = False
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()

    def user(self, i: int) -> Link:
        ctx = self.contexts[i]
        specs, base, headers = self.job.specs, self.job.url, self.headers
        roundtrip, origin = self.roundtrip, self.origin

        async def send(k: int) -> tuple[int, int]:
            spec = specs[k]
            status, size, _, _ = await roundtrip(ctx, k, spec.method, base + spec.path,
                                                 headers[k], spec.body)
            return status, size

        async def exchange(out: Outgoing, step: Any = None) -> Answer:
            status, size, body, got = await roundtrip(
                ctx, out.k, out.method, URL(origin + out.path, encoded=True),
                out.headers, out.body, out.wants_body)
            return Answer(status, body, list(got.items()), size)
        return Link(send, exchange, lambda: None)   # the session closes the connections

    async def roundtrip(self, ctx: UserContext | None, k: int, method: str, url: Any,
                        headers: Any, body: bytes, keep: bool = False
                        ) -> tuple[int, int, bytes, Any]:
        """One request, for a fixed request and a flow step alike: (status, body size, the
        body when `keep`, headers); a TLS connection it opened is noted for tls_ms. The
        body comes in bounded chunks, dropped or kept up to max_body: never buffered
        whole (resp.read() held GBs of an endless one)."""
        assert self.session is not None
        max_body = self.job.max_body
        timing: dict[str, Any] | None = {} if ctx is not None else None
        try:
            # redirects are answers, as in every other model: following them would send
            # requests this loop never counted
            async with self.session.request(method, url, headers=headers, data=body or None,
                                            ssl=ctx if ctx is not None else True,
                                            trace_request_ctx=timing,
                                            allow_redirects=False) as resp:
                if timing:   # this request opened a TLS connection
                    ssl_object = ctx.take_completed()  # type: ignore[union-attr]
                    if self.on_handshake is not None:
                        self.on_handshake(k, timing["connect_ns"], ssl_object)
                    ctx.keep_session(ssl_object)  # type: ignore[union-attr]
                size, kept = 0, []
                async for chunk in resp.content.iter_chunked(READ_CHUNK):
                    size += len(chunk)
                    if keep:
                        if size > max_body:
                            raise RequestFailed(BODY_TOO_LARGE, "answer body over "
                                                f"max_body ({max_body} bytes)")
                        kept.append(chunk)
                return resp.status, size, b"".join(kept), resp.headers
        except aiohttp.ClientError as exc:
            raise RequestFailed(classify_aiohttp(exc), str(exc)) from None
        except TimeoutError:
            raise RequestFailed(TIMEOUT) from None


def connection_timer() -> Any:
    """aiohttp has no hook around the TLS handshake alone: its connection-create events
    time TCP connect + TLS together, which is what tls_ms holds for the aiohttp engine
    (on loopback the connect is ~50 us of a ~1 ms handshake; the README says so)."""
    trace = aiohttp.TraceConfig()

    async def start(session: Any, ctx: Any, params: Any) -> None:
        ctx.connect_started = time.perf_counter_ns()

    async def end(session: Any, ctx: Any, params: Any) -> None:
        if ctx.trace_request_ctx is not None:
            ctx.trace_request_ctx["connect_ns"] = time.perf_counter_ns() - ctx.connect_started

    trace.on_connection_create_start.append(start)
    trace.on_connection_create_end.append(end)
    return trace
