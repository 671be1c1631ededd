"""The `fast` transport: a raw asyncio.Protocol and the httptools response parser.

No client library between the socket and the bytes: one connection per user, the request
bytes built once per spec, one sweeper for every timeout. Handles Content-Length, chunked
and close-delimited bodies, HEAD (headers only), and a server's wish to close: after a
response with `Connection: close` (or an HTTP/1.0 one without keep-alive) the connection
is closed and the next request opens a new one, as every other model does.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from typing import Any

import httptools

from harness.core.extraction import Answer
from harness.core.failures import (
    BODY_LENGTH,
    BODY_TOO_LARGE,
    CONNECT_REFUSED,
    DEFAULT_MAX_BODY,
    MALFORMED,
    OTHER,
    RESET,
    TIMEOUT,
    TLS_HANDSHAKE,
    RequestFailed,
    classify_stdlib,
)
from harness.core.job import Job
from harness.core.steps import AS_BYTES, KEEP_BODY, KEEP_NOTHING, StepView
from harness.transports.base import Link, OnHandshake, Receiver, Swept
from harness.transports.tls import UserContext, user_contexts
from harness.transports.wire import request_bytes

# a plain request's reads are kept (to learn its head should the connection close before
# the answer ends) up to this many bytes; a head beyond it that is then cut is a reset
STASH_LIMIT = 65536
# a second answer in the read that ended the first: pipelined answers we never asked for
SECOND_ANSWER = "a second answer in the same read (none was asked for)"


class _Lean:
    """The parser callbacks a plain fixed request needs: the body's size and the answer's
    end. httptools calls only the callbacks its protocol has, and each is a Python call
    from C: five headers cost more than the rest of the answer (measured: ~3 us of ~20)."""

    __slots__ = ("on_body", "on_message_complete")

    def __init__(self, conn: FastConnection) -> None:
        self.on_body = conn._lean_body
        self.on_message_complete = conn._lean_complete


class _HeadProbe:
    """What a cut answer's head said (Content-Length, chunked), parsed again from the
    kept reads only when the connection closed before the answer ended."""

    def __init__(self) -> None:
        self.headers_done = False
        self.length = -1
        self.chunked = False

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length" and value.strip().isdigit():
            self.length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            self.chunked = True

    def on_headers_complete(self) -> None:
        self.headers_done = True


class FastConnection(asyncio.Protocol):
    __slots__ = ("loop", "transport", "parser", "waiter", "status", "nbytes", "length",
                 "chunked", "headers_done", "head", "deadline", "keep_alive", "capture",
                 "got_headers", "chunks", "wanted", "wanted_sizes", "max_body", "completed",
                 "receiver", "full", "lean", "stash", "stashed")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        # two parsers: `full` (every header seen: flows, HEAD, the first request on a
        # connection) and `lean` (a posted plain request: its body and its end only)
        self.parser = self.full = httptools.HttpResponseParser(self)
        self.lean = httptools.HttpResponseParser(_Lean(self))
        self.stash: list[bytes] | None = None   # a lean answer's reads, until its body
        self.stashed = 0
        self.waiter: asyncio.Future[tuple[int, int]] | None = None
        # a callback-driven user (clients/chained.py) waiting for its answer, instead of
        # a future: told at once, in the read that completed the answer (post())
        self.receiver: Receiver | None = None
        self.deadline = 0.0  # loop time; checked by a sweeper, not one timer per request
        self._reset_message(False)
        self.capture = KEEP_NOTHING   # flow steps: KEEP_HEADERS, KEEP_BODY (core.steps)
        self.got_headers: list[tuple[str, str]] = []
        self.chunks: list[bytes] = []
        self.wanted: frozenset[bytes] = frozenset()   # header names a flow step keeps
        self.wanted_sizes: frozenset[int] = frozenset()
        self.max_body = DEFAULT_MAX_BODY   # a captured body beyond it: body_too_large
        self.completed = False   # an answer ended in the read being parsed

    def _reset_message(self, is_head: bool) -> None:
        """What one answer's parse state starts from (a new connection, each request)."""
        self.status = 0
        self.nbytes = 0
        self.length = -1
        self.chunked = False
        self.headers_done = False
        self.head = is_head
        self.keep_alive = True

    # -- protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self._waiting():   # bytes nobody asked for: the connection is out of step
            self.close()          # (the next request opens a new one)
            return
        stash = self.stash
        if stash is not None and not self.nbytes:   # a lean answer's head: kept, bounded
            self.stashed += len(data)
            if self.stashed <= STASH_LIMIT:
                stash.append(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            # bytes after an answer's announced end, in the same read: the answer was not
            # what it said it was (aiohttp and http.client say malformed_response too)
            self.completed = False
            self._finish_error(RequestFailed(MALFORMED, str(exc)))
            return
        if self.completed:   # resolved after the whole read: see the line above
            self.completed = False
            self._finish_ok()

    def _waiting(self) -> bool:
        """A request is out and its answer not yet told."""
        waiter = self.waiter
        return self.receiver is not None or (waiter is not None and not waiter.done())

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self._waiting():
            return
        if self.stash is not None:
            self._learn_head()
        if isinstance(exc, ssl.SSLError):  # e.g. a TLS 1.3 server refusing our certificate
            self._finish_error(RequestFailed(classify_stdlib(exc), str(exc)))
        elif self.headers_done and self.length < 0 and not self.chunked:
            self._finish_ok()  # close-delimited body: the close is its end
        elif self.headers_done:
            self._finish_error(RequestFailed(BODY_LENGTH, "connection closed mid-body"))
        else:
            self._finish_error(RequestFailed(RESET, "connection closed before the response"))

    def _learn_head(self) -> None:
        """A lean answer was cut: what its head said, from the reads kept."""
        probe = _HeadProbe()
        if self.stashed <= STASH_LIMIT:
            parser = httptools.HttpResponseParser(probe)
            try:
                parser.feed_data(b"".join(self.stash or ()))
            except httptools.HttpParserError:
                pass
            if probe.headers_done:
                self.status = parser.get_status_code()
        self.headers_done, self.length, self.chunked = (probe.headers_done, probe.length,
                                                        probe.chunked)

    def _lean_body(self, body: bytes) -> None:
        self.nbytes += len(body)

    def _lean_complete(self) -> None:
        if self.completed:
            raise ValueError(SECOND_ANSWER)
        parser = self.parser
        self.status = parser.get_status_code()
        self.keep_alive = parser.should_keep_alive()
        self.headers_done = self.completed = True

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name)  # only Content-Length (14) and Transfer-Encoding (17) matter
        if size == 14 and name.lower() == b"content-length":
            self.length = int(value)
        elif size == 17 and name.lower() == b"transfer-encoding" and b"chunked" in value.lower():
            self.chunked = True
        # a flow step keeps the headers it reads: their sizes first, lower() only then
        if self.capture and size in self.wanted_sizes and name.lower() in self.wanted:
            self.got_headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.headers_done = True
        parser = self.parser
        self.status = parser.get_status_code()
        # Connection: close, or HTTP/1.0 without keep-alive: this answer is the last
        self.keep_alive = parser.should_keep_alive()
        if self.head:
            # httptools cannot be told the request was HEAD: it ends here (told once the
            # read is parsed, as any answer), a fresh parser for the next
            self.parser = self.full = httptools.HttpResponseParser(self)
            self.completed = True

    def on_body(self, body: bytes) -> None:
        self.nbytes += len(body)
        if self.capture == KEEP_BODY:
            if self.nbytes > self.max_body:   # held for extraction: never without bound
                self._finish_error(RequestFailed(
                    BODY_TOO_LARGE, f"answer body over max_body ({self.max_body} bytes)"))
                return
            self.chunks.append(body)

    def on_message_complete(self) -> None:
        if self.completed:   # httptools raises it from feed_data: the read is malformed
            raise ValueError(SECOND_ANSWER)
        if not self.head:
            self.completed = True

    # -- requests ---------------------------------------------------------------------------

    def _finish_ok(self) -> None:
        waiter = self.waiter
        if not self.keep_alive and self.transport is not None:
            self.transport.close()  # the server said so: the next request reconnects
            self.transport = None
        receiver = self.receiver
        if receiver is not None:   # the callback path: the user sends its next from here
            self.receiver = None
            receiver.answered(self.status, self.nbytes)
            return
        if waiter is not None and not waiter.done():
            if self.capture:   # a flow step: what it extracts from and the jar takes
                waiter.set_result(Answer(self.status, b"".join(self.chunks),
                                         self.got_headers, self.nbytes))
            else:
                waiter.set_result((self.status, self.nbytes))

    def _finish_error(self, exc: RequestFailed) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()
        receiver = self.receiver
        if receiver is not None:   # closed first: the user's next request reconnects
            self.receiver = None
            receiver.failed(exc)

    def check_timeout(self, now: float) -> None:
        if now > self.deadline and self._waiting():
            self._finish_error(RequestFailed(TIMEOUT, "no complete response in time"))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()
            self.transport = None

    def request(self, data: bytes, is_head: bool, timeout: float, capture: int = KEEP_NOTHING,
                wanted: frozenset[bytes] = frozenset()) -> asyncio.Future:
        """Send one request; the future resolves to (status, body bytes) -- or, with
        `capture`, to the Answer of a flow step: its `wanted` headers (KEEP_HEADERS), and
        its body too (KEEP_BODY)."""
        self.capture = capture
        if capture:
            self.got_headers = []
            self.chunks = []
            if wanted is not self.wanted:
                self.wanted, self.wanted_sizes = wanted, frozenset(map(len, wanted))
        self._reset_message(is_head)
        self.parser, self.stash = self.full, None
        self.waiter = waiter = self.loop.create_future()
        self.deadline = self.loop.time() + timeout
        self.transport.write(data)  # type: ignore[union-attr]
        return waiter

    def post(self, data: bytes, is_head: bool, timeout: float, receiver: Receiver) -> None:
        """Send one fixed request and tell `receiver` its answer -- `answered(status,
        body bytes)` or `failed(RequestFailed)` -- from the read that completes it: no
        future, no coroutine, no task per request (the callback-driven user's path)."""
        self.capture = KEEP_NOTHING
        self.status = self.nbytes = 0
        self.length = -1
        self.chunked = self.headers_done = False
        self.head = is_head
        self.keep_alive = True
        if is_head:   # its end is its head's: the full parser knows it
            self.parser, self.stash = self.full, None
        else:
            self.parser, self.stash, self.stashed = self.lean, [], 0
        self.receiver = receiver
        self.deadline = self.loop.time() + timeout
        self.transport.write(data)  # type: ignore[union-attr]


class FastClient:
    """One user's connection, reopened after any error that leaves it unusable (and after
    every request with `fresh`: handshake per-request or resume).

    Over TLS the TCP connection is made first and TLS started on it (`loop.start_tls`), so
    the handshake is timed apart from the connect."""

    def __init__(self, host: str, port: int, timeout: float, ctx: UserContext | None = None,
                 on_handshake: Callable[[int, int, Any], None] | None = None,
                 fresh: bool = False, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.max_body = max_body
        self.ctx, self.on_handshake, self.fresh = ctx, on_handshake, fresh
        self.conn: FastConnection | None = None

    def check_timeout(self, now: float) -> None:
        if self.conn is not None:
            self.conn.check_timeout(now)

    async def send(self, k: int, data: bytes, is_head: bool, capture: int = KEEP_NOTHING,
                   wanted: frozenset[bytes] = frozenset()) -> Any:
        """One request on this user's connection, (re)connecting first: (status, bytes),
        or a flow step's Answer with `capture` (FastConnection.request)."""
        conn = self.conn
        handshake: tuple[int, Any] | None = None
        if conn is None or conn.transport is None:
            loop = asyncio.get_running_loop()
            try:
                transport, conn = await asyncio.wait_for(loop.create_connection(
                    FastConnection, self.host, self.port), self.timeout)
            except ConnectionRefusedError as exc:
                raise RequestFailed(CONNECT_REFUSED, str(exc)) from None
            except TimeoutError:
                raise RequestFailed(TIMEOUT, "connect timed out") from None
            except OSError as exc:
                raise RequestFailed(OTHER, str(exc)) from None
            conn.max_body = self.max_body
            if self.ctx is not None:
                handshake = await self._start_tls(loop, transport, conn)
            self.conn = conn
        try:
            answer = await conn.request(data, is_head, self.timeout, capture, wanted)
        except RequestFailed:
            self.conn = None
            raise
        if handshake is not None:
            ssl_object = conn.transport.get_extra_info("ssl_object") \
                if conn.transport is not None else handshake[1]
            if self.on_handshake is not None:
                self.on_handshake(k, handshake[0], ssl_object)
            self.ctx.keep_session(ssl_object)  # type: ignore[union-attr]
        if self.fresh and conn.transport is not None:
            conn.transport.close()   # politely (close_notify, FIN): the next one is new
            conn.transport = None
        return answer

    async def _start_tls(self, loop: asyncio.AbstractEventLoop,
                         transport: asyncio.BaseTransport, conn: FastConnection
                         ) -> tuple[int, Any]:
        """TLS on the connected socket: (handshake ns, SSL object); a failure is the
        request's, as tls_verify or tls_handshake."""
        started = time.perf_counter_ns()
        try:
            secure = await asyncio.wait_for(loop.start_tls(
                transport, conn, self.ctx, server_hostname=self.host), self.timeout)
        except TimeoutError:
            transport.abort()
            raise RequestFailed(TIMEOUT, "TLS handshake timed out") from None
        except ssl.SSLError as exc:
            transport.abort()
            raise RequestFailed(classify_stdlib(exc), str(exc)) from None
        except OSError as exc:   # the peer hung up mid-handshake: a failed handshake
            transport.abort()
            raise RequestFailed(TLS_HANDSHAKE, str(exc) or type(exc).__name__) from None
        took = time.perf_counter_ns() - started
        if secure is None:   # the peer closed during the handshake
            raise RequestFailed(RESET, "closed during the TLS handshake")
        conn.transport = secure  # type: ignore[assignment]
        return took, secure.get_extra_info("ssl_object")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class FastTransport(Swept):
    """A FastClient per user, the fixed requests' bytes built once, one sweeper for every
    user's timeout. A user's `send` on a kept-alive connection returns the request's bare
    future (the hot path: no coroutine per request); a new connection goes through
    FastClient.send, a coroutine. Flow steps come as the bytes to send (AS_BYTES)."""

    takes = AS_BYTES

    def __init__(self, job: Job, on_handshake: OnHandshake | None = None) -> None:
        super().__init__(job, on_handshake)
        host, port = job.host_port
        self.wire = [(request_bytes(s, host, port, job.base_path, job.default_port),
                      s.method == "HEAD") for s in job.specs]
        self.contexts = user_contexts(job, job.concurrency)
        self.clients: list[FastClient] = []

    def user(self, i: int) -> Link:
        job = self.job
        client = FastClient(*job.host_port, job.timeout_s, self.contexts[i],
                            self.on_handshake, job.fresh_connections, job.max_body)
        self.clients.append(client)
        wire, timeout, fresh = self.wire, job.timeout_s, job.fresh_connections

        def send(k: int) -> Any:
            data, is_head = wire[k]
            conn = client.conn
            if conn is not None and conn.transport is not None and not fresh:
                return conn.request(data, is_head, timeout)  # hot path: the bare future
            return client.send(k, data, is_head)  # (re)connect first: a coroutine

        def exchange(data: bytes, step: StepView) -> Any:
            conn = client.conn
            if conn is not None and conn.transport is not None and not fresh:
                # kept alive: the bare future, as the fixed requests' hot path
                return conn.request(data, step.is_head, timeout, step.capture, step.wanted)
            return client.send(step.k, data, step.is_head, step.capture, step.wanted)
        def post(k: int, receiver: Receiver) -> bool:
            conn = client.conn
            if conn is None or conn.transport is None or fresh:
                return False   # (re)connect first: the user sends through `send`
            data, is_head = wire[k]
            conn.post(data, is_head, timeout, receiver)
            return True
        return Link(send, exchange, client.close, post)

    def swept(self) -> list[FastClient]:
        return self.clients
