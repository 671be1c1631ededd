"""The asyncio model (standard loop) and the uvloop model: N coroutines on one event loop
in one thread, with the aiohttp engine (the lesson's library, what user code uses) or the
`fast` engine (raw protocol + httptools, built for rate)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp

from harness.clients.base import LocalModel
from harness.clients.failures import TIMEOUT, RequestFailed, classify_aiohttp
from harness.clients.fast import FastClient
from harness.clients.loops import async_user
from harness.clients.wire import headers_for, request_bytes


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
        wire = [(request_bytes(s, host, port, job.base_path), s.method == "HEAD")
                for s in job.specs]
        clients = [FastClient(host, port, job.timeout_s) for _ in range(job.concurrency)]

        timeout = job.timeout_s

        def sender(client: FastClient):
            def send(k: int) -> Awaitable[tuple[int, int]]:
                data, is_head = wire[k]
                conn = client.conn
                if conn is not None and conn.transport is not None:
                    return conn.request(data, is_head, timeout)  # hot path: the bare future
                return client.send(data, is_head)  # (re)connect first: a coroutine
            return send

        async def sweep_timeouts() -> None:
            loop = asyncio.get_running_loop()
            while True:
                await asyncio.sleep(min(0.1, timeout / 4))
                now = loop.time()
                for client in clients:
                    client.check_timeout(now)

        sweeper = asyncio.ensure_future(sweep_timeouts())
        try:
            await asyncio.gather(*(async_user(i, job, pacer, rec, sender(c))
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
        headers = [headers_for(s, host, port) for s in specs]
        connector = aiohttp.TCPConnector(limit=job.concurrency, limit_per_host=0,
                                         force_close=False)
        timeout = aiohttp.ClientTimeout(total=job.timeout_s)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                         auto_decompress=False,
                                         skip_auto_headers=("Content-Type",)) as session:
            # aiohttp silently resends an idempotent request once when a kept-alive
            # connection drops (aio-libs/aiohttp#10790), hiding the reset and sending a
            # request nobody counted. No public switch exists; aiohttp's own test client
            # turns it off the same way.
            if hasattr(session, "_retry_connection"):
                session._retry_connection = False
            async def send(k: int) -> tuple[int, int]:
                spec = specs[k]
                try:
                    # redirects are answers, as in every other model: following them
                    # would send requests this loop never counted
                    async with session.request(spec.method, base + spec.path,
                                               headers=headers[k],
                                               data=spec.body or None,
                                               allow_redirects=False) as resp:
                        body = await resp.read()
                        return resp.status, len(body)
                except aiohttp.ClientError as exc:
                    raise RequestFailed(classify_aiohttp(exc), str(exc)) from None
                except TimeoutError:
                    raise RequestFailed(TIMEOUT) from None
            await asyncio.gather(*(async_user(i, job, pacer, rec, send)
                                   for i in range(job.concurrency)))


def _uvloop_factory() -> asyncio.AbstractEventLoop:
    import uvloop
    return uvloop.new_event_loop()


class UvloopModel(AsyncioModel):
    loop_factory = staticmethod(_uvloop_factory)
