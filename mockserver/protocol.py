"""The hot path: one asyncio.Protocol per connection, httptools parser callbacks, no framework.

Pipelined requests are answered strictly in order: each reply takes a slot in a queue and
the queue is flushed from its head as slots become ready, so a slow first request holds
back a fast second one, as HTTP/1.1 requires. The common case (nothing queued, no delay)
writes straight to the transport without allocating a slot.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import deque
from collections.abc import Callable

import httptools

from mockserver.h2 import H2Protocol, serve_preface
from mockserver.h2frames import PREFACE
from mockserver.http import CLOSE, HANG, KEEP, RESET, Reply, Request, error_response
from mockserver.state import ServerState

# Where the connection is in reading a request (one state, not a flag per stage).
IDLE, HEAD, BODY, BROKEN = 0, 1, 2, 3
ADMIN_BODY_BYTES = 1 << 20


class _Slot:
    __slots__ = ("data", "ready", "action", "stream")

    def __init__(self, reply: Reply, ready: bool) -> None:
        self.data = reply.data
        self.ready = ready
        self.action = reply.action
        self.stream = reply.stream


class HttpProtocol(asyncio.Protocol):
    __slots__ = ("state", "handler", "loop", "parser", "transport", "url", "headers", "body",
                 "body_size", "head_size", "head_pending", "reading", "queue", "busy",
                 "closing", "last_active", "active", "special", "paused_reading", "messages",
                 "stuck_at", "_drain", "_tasks", "repeat", "repeat_url", "hit_url", "preface")

    def __init__(self, state: ServerState, handler: Callable[[Request], Reply]) -> None:
        self.state = state
        self.handler = handler
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.reading = IDLE        # IDLE, HEAD, BODY; BROKEN after a protocol error
        self._reset_message()
        self.queue: deque[_Slot] = deque()
        self.busy = False          # writing: a streamed body is being written
        self.closing = False       # close once the queue drains (shutdown, Connection: close)
        self.paused_reading = False  # flow control: too many replies queued
        self.last_active = 0.0
        self.active = True         # data arrived since the idle sweeper last looked
        self.messages = 0          # requests completed: the sweeper sees progress by it
        self.stuck_at: tuple[int, float] | None = None  # sweeper: (messages, first seen)
        self._drain: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # a read that was exactly one fast-path request, and its URL: the same bytes again
        # (a load generator's next request) are answered without the parser (see
        # data_received); `hit_url` is the URL of the last fast-path answer
        self.repeat = b""
        self.repeat_url = b""
        self.hit_url = b""
        self.preface = b""   # the start of an HTTP/2 preface split across reads

    def _reset_message(self) -> None:
        """Per-message state, cleared after each request (one place for both paths)."""
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.body_size = 0
        self.head_size = 0
        self.head_pending = 0      # bytes of reads spent in one unfinished request head
        self.special = False       # the request carries X-Mock-Latency: no fast path
        if self.reading != BROKEN:
            self.reading = IDLE

    # -- connection lifecycle -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
            proto = H2Protocol(self.state, self.handler)   # TLS chose HTTP/2
            transport.set_protocol(proto)
            proto.connection_made(transport)
            return
        self.transport = transport  # type: ignore[assignment]
        self.last_active = self.loop.time()
        if ssl_object is not None:
            self.state.handshake_done(ssl_object)
        if not self.state.connection_opened(self):
            self.transport = None
            transport.abort()  # over limits.max_connections with no one to make room

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.connection_closed(self)
        self.queue.clear()
        for task in self._tasks:
            task.cancel()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def pause_writing(self) -> None:
        self._drain = self.loop.create_future()

    def resume_writing(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None

    async def drain(self) -> None:
        """Wait while the kernel buffer is full, so a streamed body is paced by the reader."""
        if self._drain is not None:
            await self._drain

    @property
    def idle(self) -> bool:
        return not self.owes_reply and not self.mid_request

    @property
    def owes_reply(self) -> bool:
        """A request of its was read and its answer is not written yet."""
        return bool(self.queue) or self.busy

    @property
    def mid_request(self) -> bool:
        """Part of a request has arrived and the rest has not (slowloris looks like this)."""
        return self.reading in (HEAD, BODY) or bool(self.url)

    def request_timed_out(self) -> None:
        """The sweeper found this request unfinished past limits.request_timeout_s."""
        self.state.stats.request_timeouts += 1
        self._fail(408, "request not received in time")

    # -- parser callbacks -----------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.reading == BROKEN:
            return
        self.active = True
        if data == self.repeat and self.reading == IDLE and not self.queue and not self.busy \
                and not self.closing:
            # The very bytes of the last read, which were one whole fast-path request: the
            # parser would make the same callbacks and come to the same answer, and it sits
            # between messages as it did then -- answer without it, counted the same. The
            # profile is checked again (an admin change clears the fast paths).
            state = self.state
            if state.fast_path and state.fast_paths.get(self.repeat_url):
                self.messages += 1
                state.stats.fast_hits += 1
                out = state.fast_response
                self.transport.write(out)  # type: ignore[union-attr]
                state.stats.bytes_out += len(out)
                return
        if self.preface or (not self.messages and self.reading == IDLE and data[:1] == b"P"
                            and self.state.http2):
            data = self._preface(data)   # HTTP/2 by prior knowledge?
            if not data:
                return
        done_before = self.messages
        hit_before = self.state.stats.fast_hits
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            # httptools wraps what a callback raised; our limits raise _TooLarge.
            cause = exc.__context__
            if isinstance(cause, _TooLarge):
                self._fail(cause.status, cause.message)
            else:
                self._fail(500, "internal error")
                raise
            return
        except httptools.HttpParserUpgrade:
            self.closing = True  # answered as plain HTTP; we do not speak the upgraded protocol
            self._flush()
            return
        except httptools.HttpParserError as exc:
            self._fail(400, f"malformed request: {exc}")
            return
        if self.messages == done_before + 1 and self.reading == IDLE \
                and self.state.stats.fast_hits == hit_before + 1:
            # this read was one request, whole, answered by the fast path: remember it
            self.repeat, self.repeat_url = data, self.hit_url
        elif self.repeat:
            self.repeat = b""
        if self.reading == HEAD:
            # A header that never ends is buffered inside httptools, out of the callbacks'
            # sight. Bound it by the reads spent wholly on this unfinished head: a read in
            # which a request completed began this one, and may hold thousands of
            # pipelined requests before it, so it does not count.
            if self.messages != done_before:
                self.head_pending = 0
            else:
                self.head_pending += len(data)
                if self.head_pending > self.state.config.limits.max_header_bytes:
                    self._fail(431, "request header section too large")

    def _preface(self, data: bytes) -> bytes:
        """A plain connection that opens with HTTP/2's preface is h2c with prior
        knowledge: handed to the HTTP/2 front end. Returns what is left for HTTP/1.1's
        parser: nothing when the read was taken (the preface, or the start of one split
        across reads, kept until it is whole or is not one)."""
        data = self.preface + data
        if len(data) < len(PREFACE) and PREFACE.startswith(data):
            self.preface = data
            return b""
        self.preface = b""
        if data.startswith(PREFACE):
            serve_preface(self, self.state, self.handler, data)
            return b""
        return data

    # Only the callbacks we need are defined: httptools skips absent ones, and each Python
    # callback costs about as much as the parsing itself. Per-message state is reset at the
    # end of on_message_complete instead of in an on_message_begin.

    def on_url(self, url: bytes) -> None:
        self.reading = HEAD
        self.url += url
        self.head_size += len(url)
        if self.head_size > self.state.config.limits.max_header_bytes:
            raise _TooLarge(431, "request header section too large")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        self.head_size += len(name) + len(value) + 4
        if self.head_size > self.state.config.limits.max_header_bytes:
            raise _TooLarge(431, "request header section too large")
        if len(name) == 14:  # Content-Length and X-Mock-Latency: the two we look at here
            lower = name.lower()
            if lower == b"x-mock-latency":
                self.special = True
            elif lower == b"content-length":
                try:
                    size = int(value)
                except ValueError:
                    raise _TooLarge(400, "bad Content-Length") from None
                if size > self._body_limit():
                    raise _TooLarge(413, "request body too large")

    def on_body(self, body: bytes) -> None:
        self.reading = BODY
        self.body_size += len(body)
        if self.body_size > self._body_limit():
            raise _TooLarge(413, "request body too large")
        self.body.append(body)

    def _body_limit(self) -> int:
        """The admin API is never locked out by the limits it sets (max_body_bytes = 0)."""
        limit = self.state.config.limits.max_body_bytes
        return max(limit, ADMIN_BODY_BYTES) if self.url.startswith(b"/_mock/") else limit

    def on_message_complete(self) -> None:
        self.messages += 1
        parser = self.parser
        state = self.state
        url = self.url
        if state.fast_path and not self.special and not self.queue and not self.busy \
                and not self.closing and parser.should_keep_alive():
            # The default profile with nothing to vary: a cached reply, no objects made.
            hit = state.fast_paths.get(url)
            if hit is None:
                hit = state.classify_fast(url)
            if hit and parser.get_method() != b"HEAD":
                self.url = b""  # a fast-path request has no body: little to reset
                self.reading = IDLE
                self.head_size = 0
                self.headers.clear()
                data = state.fast_response
                state.stats.fast_hits += 1
                self.hit_url = url
                self.transport.write(data)  # type: ignore[union-attr]
                state.stats.bytes_out += len(data)
                return
        path, _, query = url.partition(b"?")
        request = Request(
            method=parser.get_method().decode("ascii", "replace"),
            path=path.decode("latin-1"),
            query=query.decode("latin-1"),
            headers=self.headers,
            body=b"".join(self.body) if self.body else b"",
            keep_alive=parser.should_keep_alive() and not self.closing,
            http_version=parser.get_http_version(),
        )
        self._reset_message()
        reply = self.handler(request)
        if not request.keep_alive and reply.action == KEEP:
            reply.action = CLOSE
        self.submit(reply)

    # -- replies, in order ----------------------------------------------------------------

    def submit(self, reply: Reply) -> None:
        if not self.queue and not self.busy and reply.delay <= 0 and reply.produce is None \
                and reply.stream is None and reply.action == KEEP:
            self.transport.write(reply.data)  # type: ignore[union-attr]
            self.state.stats.bytes_out += len(reply.data)
            return
        slot = _Slot(reply, ready=reply.delay <= 0 and reply.produce is None)
        self.queue.append(slot)
        if reply.produce is not None:
            self._spawn(self._produce(slot, reply))
        elif reply.delay > 0:
            self.loop.call_later(reply.delay, self._ready, slot)
        if len(self.queue) > self.state.config.limits.max_pipeline and not self.paused_reading:
            self.paused_reading = True
            self.transport.pause_reading()  # type: ignore[union-attr]
        self._flush()

    async def _produce(self, slot: _Slot, reply: Reply) -> None:
        if reply.delay > 0:
            await asyncio.sleep(reply.delay)
        slot.data = await reply.produce()  # type: ignore[misc]
        self._ready(slot)

    def _ready(self, slot: _Slot) -> None:
        slot.ready = True
        self._flush()

    def _flush(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        queue = self.queue
        self.last_active = self.loop.time()
        while queue and queue[0].ready and not self.busy:
            slot = queue.popleft()
            if slot.action == RESET:
                self._reset()
                return
            if slot.action == HANG:
                transport.close()  # held the request for its time, then dropped it unanswered
                return
            if slot.data:
                transport.write(slot.data)
                self.state.stats.bytes_out += len(slot.data)
            if slot.stream is not None:
                self.busy = True
                self._spawn(self._stream(slot))
                return
            if slot.action == CLOSE:
                transport.close()
                return
        if self.paused_reading and len(queue) <= self.state.config.limits.max_pipeline // 2:
            self.paused_reading = False
            transport.resume_reading()
        if self.closing and not queue and not self.busy:
            transport.close()

    async def _stream(self, slot: _Slot) -> None:
        try:
            await slot.stream(self)  # type: ignore[misc]
        except (ConnectionError, asyncio.CancelledError):
            return
        self.busy = False
        if slot.action == CLOSE and self.transport is not None:
            self.transport.close()
            return
        self._flush()

    def write(self, data: bytes) -> None:
        """Used by streamed bodies; counts bytes like every other write."""
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("client went away")
        self.transport.write(data)
        self.state.stats.bytes_out += len(data)

    def _spawn(self, coro: object) -> None:
        task = self.loop.create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _reset(self) -> None:
        """Close with RST (SO_LINGER 0) so the client sees ECONNRESET, not a clean FIN."""
        sock = self.transport.get_extra_info("socket")  # type: ignore[union-attr]
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.transport.abort()  # type: ignore[union-attr]

    def _fail(self, status: int, message: str) -> None:
        """Answer a protocol error after the replies already queued, then close."""
        self.reading = BROKEN
        self.state.stats.malformed_requests += 1
        self.submit(Reply(data=error_response(status, message), action=CLOSE))

    def shutdown(self) -> None:
        """Server is stopping: close now if idle, else after the queued replies."""
        self.closing = True
        if self.idle and self.transport is not None:
            self.transport.close()


class _TooLarge(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
