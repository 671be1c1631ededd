"""The asyncio model (standard loop) and the uvloop model: N coroutines on one event loop
in one thread, sending through the aiohttp transport (the lesson's library, what user code
uses) or the `fast` one (raw protocol + httptools, built for rate)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from harness.clients.base import LocalModel
from harness.clients.chained import run_chained
from harness.clients.flows import prepare
from harness.clients.loops import Journeys, async_user
from harness.transports.base import transport_for
from harness.transports.wire import base_headers


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
        """Every user a coroutine over the job's transport (core.registry picks it from
        the model's `engine`: aiohttp or the fast engine)."""
        job = self.job
        host, port = job.host_port
        flows, flow_user = prepare(job, base_headers(host, port, job.default_port))
        transport = transport_for(job)(job, self.handshake_note())
        self.wire_counts = getattr(transport, "counts", None)
        async with transport:
            links = [transport.user(i) for i in range(job.concurrency)]
            try:
                if all(link.post is not None for link in links):
                    # the fast engine: callback-driven users (clients/chained.py)
                    await run_chained(job, self.pacer, self.recorder, links, [
                        Journeys(flows, flow_user(i), link.exchange, transport.takes)
                        if flows else None for i, link in enumerate(links)])
                    return
                await asyncio.gather(*(
                    async_user(i, job, self.pacer, self.recorder, link.send,
                               Journeys(flows, flow_user(i), link.exchange, transport.takes)
                               if flows else None)
                    for i, link in enumerate(links)))
            finally:
                for link in links:
                    link.close()


def _uvloop_factory() -> asyncio.AbstractEventLoop:
    import uvloop
    return uvloop.new_event_loop()


class UvloopModel(AsyncioModel):
    loop_factory = staticmethod(_uvloop_factory)
