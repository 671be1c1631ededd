"""The one client-side interface between how users are scheduled (clients/) and how a
request goes on the wire (this room), as httpx's BaseTransport cuts its API from the
network.

A Transport is opened once per load process for one model's job: it holds what the users
share (a session, a timeout sweeper, the TLS contexts) and gives each user its `Link`.
A link sends one request and hands back its answer:

- `send(k)`: the job's fixed request k -> (status, body size);
- `exchange(out, step)`: a rendered flow step (an Outgoing, or its bytes when the
  transport `takes` AS_BYTES) -> the Answer the step extracts from;
- `close()`: the user is done;
- `post(k, receiver)` (optional; None where a transport has no such path): send fixed
  request k on the user's open connection and call `receiver.answered(status, size)` or
  `receiver.failed(exc)` when it ends -- a callback, not an awaitable, so a
  callback-driven user (clients/chained.py) pays no future or coroutine per request.
  False when there is no open connection to send on: the user then goes through `send`.

A blocking transport's calls return the answer; an async transport's return awaitables
(the fast engine's hot path returns the bare future of the request: no coroutine frame per
request), and the transport is an async context manager around its users' lifetime.
Failures are RequestFailed with one of core.failures' kinds, the same kind for the same
fault in every transport. A new protocol is one module here and one registry line
(core.registry.TRANSPORTS).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from harness.core.job import Job
from harness.core.steps import AS_REQUEST

# what a transport calls after each TLS handshake: (request row, handshake ns, SSL object)
OnHandshake = Callable[[int, int, Any], None]


class Receiver(Protocol):
    """Who a `post`ed request's answer is told to (clients/chained.py's users)."""

    def answered(self, status: int, nbytes: int) -> None: ...

    def failed(self, exc: Exception) -> None: ...


@dataclass(frozen=True, slots=True)
class Link:
    """One user's way to the target: its calls, bound to its connection(s)."""

    send: Callable[[int], Any]
    exchange: Callable[[Any, Any], Any]
    close: Callable[[], None]
    post: Callable[[int, Receiver], bool] | None = None


class Transport:
    """What every transport is: built from the job (and the model's handshake hook), one
    Link per user. Subclasses set `takes` and implement `user`."""

    takes: ClassVar[str] = AS_REQUEST   # what exchange() is given (core.steps AS_*)

    def __init__(self, job: Job, on_handshake: OnHandshake | None = None) -> None:
        self.job = job
        self.on_handshake = on_handshake

    def user(self, i: int) -> Link:
        """User i's link (its connection opens on its first request)."""
        raise NotImplementedError

    # blocking transports: a context manager too, so a model drives both kinds alike
    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class Swept(Transport):
    """An event-loop transport whose requests' deadlines one task checks every 0.1 s (or a
    quarter of the timeout), not a timer each: subclasses name what is swept -- things
    with `check_timeout(now)` and `close()` -- in `swept()`."""

    sweeper: Any = None

    def swept(self) -> Iterable[Any]:
        raise NotImplementedError

    async def _sweep_timeouts(self) -> None:
        import asyncio
        loop = asyncio.get_running_loop()
        every = min(0.1, self.job.timeout_s / 4)
        while True:
            await asyncio.sleep(every)
            now = loop.time()
            for item in list(self.swept()):
                item.check_timeout(now)

    async def __aenter__(self) -> Swept:
        import asyncio
        self.sweeper = asyncio.ensure_future(self._sweep_timeouts())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.sweeper is not None:
            self.sweeper.cancel()
        for item in list(self.swept()):
            item.close()


def transport_for(job: Job) -> type[Transport]:
    """The Transport class the job's model sends through (core.registry), imported only
    here, in the load process that runs it."""
    import importlib

    from harness.core.registry import MODELS
    kind = MODELS[job.model]
    if kind.wraps:   # the process model: its processes run the sub-model's users
        kind = MODELS[job.sub_model]
    module, _, name = kind.transport(job.engine, job.http).impl.partition(":")
    return getattr(importlib.import_module(module), name)
