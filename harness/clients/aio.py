"""The asyncio model (standard loop) and the uvloop model: N coroutines on one event loop
in one thread, with the aiohttp engine (the lesson's library, what user code uses) or the
`fast` engine (raw protocol + httptools, built for rate)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from yarl import URL

from harness.clients.base import LocalModel
from harness.clients.fast import FastClient
from harness.clients.flows import Outgoing, prepare
from harness.clients.loops import Journeys, async_user
from harness.clients.tls import UserContext, user_contexts
from harness.clients.wire import READ_CHUNK, base_headers, headers_for, request_bytes
from harness.core.extraction import Answer
from harness.core.failures import BODY_TOO_LARGE, TIMEOUT, RequestFailed, classify_aiohttp
from harness.core.steps import AS_BYTES


class AsyncioModel(LocalModel):
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop

    def launch(self) -> None:
        self.spawn(self._run_loop)

    def _run_loop(self) -> None:
        with asyncio.Runner(loop_factory=type(self).loop_factory) as runner:
            runner.run(self._main())

    def run_foreground(self, tick: Callable[[], None], every: float) -> None:
        """The event loop in this very thread, tick() as one of its tasks: no second thread
        competing with the loop for the GIL."""
        async def main_with_ticks() -> None:
            main = asyncio.ensure_future(self._main())
            while not main.done():
                await asyncio.wait([main], timeout=every)
                tick()
            main.result()
        try:
            with asyncio.Runner(loop_factory=type(self).loop_factory) as runner:
                runner.run(main_with_ticks())
        except Exception as exc:  # reported by the worker as a failed run
            self.error = exc

    async def _main(self) -> None:
        if self.job.engine == "fast":
            await self._run_fast()
        else:
            await self._run_aiohttp()

    async def _run_fast(self) -> None:
        job, pacer, rec = self.job, self.pacer, self.recorder
        host, port = job.host_port
        wire = [(request_bytes(s, host, port, job.base_path, job.default_port),
                 s.method == "HEAD") for s in job.specs]
        contexts = user_contexts(job, job.concurrency)
        note = self.handshake_note()
        clients = [FastClient(host, port, job.timeout_s, contexts[i], note,
                              job.fresh_connections, job.max_body)
                   for i in range(job.concurrency)]

        timeout = job.timeout_s
        fresh = job.fresh_connections

        def sender(client: FastClient):
            def send(k: int) -> Awaitable[tuple[int, int]]:
                data, is_head = wire[k]
                conn = client.conn
                if conn is not None and conn.transport is not None and not fresh:
                    return conn.request(data, is_head, timeout)  # hot path: the bare future
                return client.send(k, data, is_head)  # (re)connect first: a coroutine
            return send

        async def sweep_timeouts() -> None:
            loop = asyncio.get_running_loop()
            while True:
                await asyncio.sleep(min(0.1, timeout / 4))
                now = loop.time()
                for client in clients:
                    client.check_timeout(now)

        flows, flow_user = prepare(job, base_headers(host, port, job.default_port))

        def journeys(i: int, client: FastClient) -> Journeys | None:
            if not flows:
                return None

            user = flow_user(i)

            def exchange(data: bytes) -> Awaitable[Answer]:
                step = user.current.step  # type: ignore[union-attr]
                conn = client.conn
                if conn is not None and conn.transport is not None and not fresh:
                    # kept alive: the bare future, as the fixed requests' hot path
                    return conn.request(data, step.is_head, timeout, step.capture,
                                        step.wanted)
                return client.send(step.k, data, step.is_head, step.capture, step.wanted)
            return Journeys(flows, user, exchange, takes=AS_BYTES)

        sweeper = asyncio.ensure_future(sweep_timeouts())
        try:
            await asyncio.gather(*(async_user(i, job, pacer, rec, sender(c), journeys(i, c))
                                   for i, c in enumerate(clients)))
        finally:
            sweeper.cancel()
            for client in clients:
                client.close()

    async def _run_aiohttp(self) -> None:
        job, pacer, rec = self.job, self.pacer, self.recorder
        specs = job.specs
        base = job.url
        host, port = job.host_port
        # the documented header set (wire.py), given in full so aiohttp adds none of its
        # own (it would send Accept-Encoding: gzip and its User-Agent)
        headers = [headers_for(s, host, port, job.default_port) for s in specs]
        connector = aiohttp.TCPConnector(limit=job.concurrency, limit_per_host=0,
                                         force_close=job.fresh_connections)
        timeout = aiohttp.ClientTimeout(total=job.timeout_s)
        contexts = user_contexts(job, job.concurrency)
        for ctx in {id(c): c for c in contexts if c is not None}.values():
            ctx.track()
        note = self.handshake_note()
        max_body = job.max_body
        origin = job.url.removesuffix(job.base_path) if job.base_path else job.url
        flows, flow_user = prepare(job, base_headers(host, port, job.default_port))
        # our own cookie jar (flows.CookieJar) is the only one, as in every other model
        async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                         auto_decompress=False,
                                         cookie_jar=aiohttp.DummyCookieJar(),
                                         trace_configs=[connection_timer()] if job.secure
                                         else None,
                                         skip_auto_headers=("Content-Type",)) as session:
            # aiohttp silently resends an idempotent request once when a kept-alive
            # connection drops (aio-libs/aiohttp#10790), hiding the reset and sending a
            # request nobody counted. No public switch exists; aiohttp's own test client
            # turns it off the same way.
            if hasattr(session, "_retry_connection"):
                session._retry_connection = False
            async def roundtrip(ctx: UserContext | None, k: int, method: str, url: Any,
                                headers: Any, body: bytes, keep: bool = False
                                ) -> tuple[int, int, bytes, Any]:
                """One request, for a fixed request and a flow step alike: (status, body
                size, the body when `keep`, headers); a TLS connection it opened is noted
                for tls_ms. The body comes in bounded chunks, dropped or kept up to
                max_body: never buffered whole (resp.read() held GBs of an endless one)."""
                timing: dict[str, Any] | None = {} if ctx is not None else None
                try:
                    # redirects are answers, as in every other model: following them
                    # would send requests this loop never counted
                    async with session.request(method, url, headers=headers,
                                               data=body or None,
                                               ssl=ctx if ctx is not None else True,
                                               trace_request_ctx=timing,
                                               allow_redirects=False) as resp:
                        if timing:   # this request opened a TLS connection
                            ssl_object = ctx.take_completed()  # type: ignore[union-attr]
                            note(k, timing["connect_ns"], ssl_object)
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

            def sender(ctx: UserContext | None) -> Callable[[int], Awaitable[tuple[int, int]]]:
                async def send(k: int) -> tuple[int, int]:
                    spec = specs[k]
                    status, size, _, _ = await roundtrip(ctx, k, spec.method,
                                                         base + spec.path, headers[k],
                                                         spec.body)
                    return status, size
                return send

            def journeys(i: int) -> Journeys | None:
                if not flows:
                    return None
                ctx = contexts[i]

                async def exchange(out: Outgoing) -> Answer:
                    status, size, body, got = await roundtrip(
                        ctx, out.k, out.method, URL(origin + out.path, encoded=True),
                        out.headers, out.body, out.wants_body)
                    return Answer(status, body, list(got.items()), size)
                return Journeys(flows, flow_user(i), exchange)
            await asyncio.gather(*(async_user(i, job, pacer, rec, sender(contexts[i]),
                                              journeys(i))
                                   for i in range(job.concurrency)))


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


def _uvloop_factory() -> asyncio.AbstractEventLoop:
    import uvloop
    return uvloop.new_event_loop()


class UvloopModel(AsyncioModel):
    loop_factory = staticmethod(_uvloop_factory)
