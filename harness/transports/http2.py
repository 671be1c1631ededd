"""The `h2` transport: HTTP/2 for the fast engine's models, over h2's sans-IO state
machine on a raw asyncio.Protocol.

`streams_per_connection` users share one connection, each request a stream (capped by the
server's SETTINGS_MAX_CONCURRENT_STREAMS: a request beyond it waits for a stream to end,
its wait inside its latency). A request's header block is built once per fixed request:
the pseudo-headers, then the same header set as HTTP/1.1 lower-cased, without Host (it is
:authority) or any connection-specific header (wire.h2_headers).

Errors: RST_STREAM is `h2_reset` with the code's name in the detail; GOAWAY lets the
streams at or below its last id finish, and resends those above it (never processed, so
never counted by the target) on a new connection, counted in `retried`; a stream still
open when a GOAWAY'd connection closes is `goaway`. A stream past its deadline -- a
server that never sends SETTINGS, a window it never opens -- is cancelled (RST_STREAM
CANCEL) and is `timeout`; the connection stays. Memory is bounded per request: bodies are
counted, not kept, unless a flow step keeps one up to max_body; h2 bounds a header list
(SETTINGS_MAX_HEADER_LIST_SIZE) and CONTINUATION backlogs.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes

from harness.core.extraction import Answer
from harness.core.failures import (
    BODY_TOO_LARGE,
    CONNECT_REFUSED,
    GOAWAY,
    H2_RESET,
    MALFORMED,
    OTHER,
    RESET,
    TIMEOUT,
    TLS_HANDSHAKE,
    RequestFailed,
    classify_stdlib,
    h2_code_name,
)
from harness.core.job import Job
from harness.core.steps import KEEP_BODY, KEEP_NOTHING, Outgoing
from harness.transports.base import Link, OnHandshake, Receiver, Swept
from harness.transports.tls import UserContext, user_contexts
from harness.transports.wire import h2_headers, h2_step_headers
from mockserver.h2frames import Encoded, stateless_block

WINDOW = 1 << 24          # our receive window: a fast target is never held by our acks
MAX_HEADER_LIST = 64 * 1024
Headers = list[tuple[bytes, bytes]]


class _Graceful(h2.connection.H2Connection):
    """h2 closes its state machine when a GOAWAY arrives, and then refuses every frame
    after it -- the answers of the streams at or below its last id too, which the server
    goes on to finish (RFC 9113 6.8: nginx does at keepalive_requests). Here the
    connection stays open for those; no new stream starts on it (H2Conn.usable)."""

    def _receive_goaway_frame(self, frame: Any) -> Any:
        frames, events = super()._receive_goaway_frame(frame)
        self.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
        return frames, events


class _Out:
    """One request: what to send, who is told, what came back so far."""

    __slots__ = ("k", "headers", "body", "capture", "wanted", "waiter", "receiver",
                 "deadline", "status", "nbytes", "got", "chunks", "max_body", "encoded")

    def __init__(self, k: int, headers: Headers, body: bytes, deadline: float,
                 capture: int = KEEP_NOTHING, wanted: frozenset[bytes] = frozenset(),
                 encoded: Encoded | None = None) -> None:
        self.k, self.headers, self.body, self.deadline = k, headers, body, deadline
        self.encoded = encoded   # a fixed request's block, encoded once
        self.capture, self.wanted = capture, wanted
        self.waiter: asyncio.Future[Any] | None = None
        self.receiver: Receiver | None = None
        self.status = self.nbytes = 0
        self.got: list[tuple[str, str]] = []
        self.chunks: list[bytes] = []
        self.max_body = 0

    def tell(self) -> None:
        if self.receiver is not None:
            self.receiver.answered(self.status, self.nbytes)
        elif self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(Answer(self.status, b"".join(self.chunks), self.got,
                                          self.nbytes) if self.capture
                                   else (self.status, self.nbytes))

    def fail(self, exc: RequestFailed) -> None:
        if self.receiver is not None:
            self.receiver.failed(exc)
        elif self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)


class H2Conn(asyncio.Protocol):
    """One client connection and its streams."""

    def __init__(self, group: _Group) -> None:
        self.group = group
        self.loop = asyncio.get_running_loop()
        # our header lists are built lower-cased and valid (wire.h2_block): h2 need not
        # normalise and check them again on every request; an answer's headers are taken
        # as they come, as httpcore takes them for the sync and thread models
        config = h2.config.H2Configuration(client_side=True, header_encoding=None,
                                           normalize_outbound_headers=False,
                                           validate_outbound_headers=False,
                                           validate_inbound_headers=False)
        self.h2 = _Graceful(config=config)
        self.h2.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST,
        })
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, _Out] = {}
        self.backlog: deque[_Out] = deque()   # waiting for a stream under the server's cap
        self.goaway: int | None = None        # the error code of a GOAWAY received
        self.reading = False                  # in data_received: it writes at its end
        self.flush_due = False                # a write is scheduled for this loop turn
        self.ssl_object: Any = None
        # the server's first SETTINGS: until it comes its stream cap is unknown (h2 would
        # let us open 2**32), so no stream starts before it
        self.settled: asyncio.Future[None] = self.loop.create_future()

    @property
    def usable(self) -> bool:
        return self.transport is not None and self.goaway is None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.group.owner.conns.add(self)
        if self.group.ctx is None:   # over TLS the preface waits for the handshake
            self.begin(transport)

    def begin(self, transport: asyncio.BaseTransport) -> None:
        """The connection is ours to speak on (TCP, or TLS once shaken hands): preface,
        SETTINGS and the connection's window."""
        self.transport = transport  # type: ignore[assignment]
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(WINDOW - 65535)
        self._flush()

    def start(self, out: _Out) -> None:
        """Open a stream for `out`, or queue it behind the server's stream cap."""
        h2c = self.h2
        if h2c.open_outbound_streams >= h2c.remote_settings.max_concurrent_streams:
            self.backlog.append(out)
            return
        body = out.body
        encoder = h2c.encoder
        try:
            sid = h2c.get_next_available_stream_id()
            if out.encoded is not None:
                h2c.encoder = out.encoded   # type: ignore[assignment]
            h2c.send_headers(sid, out.headers, end_stream=not body)
            if body:   # request bodies are small: sent now, within the initial window
                h2c.send_data(sid, body, end_stream=True)
        except h2.exceptions.ProtocolError as exc:
            out.fail(RequestFailed(OTHER, f"cannot send on this connection: {exc}"))
            return
        finally:
            h2c.encoder = encoder
        self.streams[sid] = out
        self.group.counts["streams"] += 1
        if not self.reading and not self.flush_due:   # one write per loop turn, not each
            self.flush_due = True
            self.loop.call_soon(self._flush)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._abort(RequestFailed(MALFORMED, f"HTTP/2 protocol error: {exc}"))
            return
        self.reading = True
        try:
            self._events(events)
        finally:
            self.reading = False
        self._next()
        self._flush()

    def _events(self, events: list[Any]) -> None:
        for event in events:   # a GOAWAY first: no answer in this read sends on it
            if type(event) is h2.events.ConnectionTerminated:
                self.goaway = event.error_code
        for event in events:
            kind = type(event)
            if kind is h2.events.DataReceived:
                self._data(event)
            elif kind is h2.events.ResponseReceived:
                self._head(event.stream_id, event.headers)
            elif kind is h2.events.StreamEnded:
                self._end(event.stream_id)
            elif kind is h2.events.StreamReset:
                out = self.streams.pop(event.stream_id, None)
                if out is not None:
                    code = h2_code_name(event.error_code)   # errors.csv's detail
                    out.fail(RequestFailed(f"{H2_RESET}/{code}", f"RST_STREAM {code}"))
            elif kind is h2.events.ConnectionTerminated:
                self._goaway(event.error_code, event.last_stream_id)
            elif kind is h2.events.RemoteSettingsChanged and not self.settled.done():
                self.settled.set_result(None)

    def _head(self, sid: int, headers: Headers) -> None:
        out = self.streams.get(sid)
        if out is None:
            return
        for name, value in headers:
            if name == b":status":
                out.status = int(value)
            elif out.capture and name in out.wanted:
                out.got.append((name.decode("latin-1"), value.decode("latin-1")))

    def _data(self, event: h2.events.DataReceived) -> None:
        sid = event.stream_id
        self.h2.acknowledge_received_data(event.flow_controlled_length, sid)
        out = self.streams.get(sid)
        if out is None:
            return
        out.nbytes += len(event.data)
        if out.capture == KEEP_BODY:
            if out.nbytes > out.max_body:   # held for extraction: never without bound
                self.streams.pop(sid)
                self._reset(sid)
                out.fail(RequestFailed(BODY_TOO_LARGE,
                                       f"answer body over max_body ({out.max_body} bytes)"))
                return
            out.chunks.append(event.data)

    def _end(self, sid: int) -> None:
        out = self.streams.pop(sid, None)
        if out is not None:
            if self.group.fresh and self.ssl_object is not None:
                # after an answer: a TLS 1.3 ticket comes after the handshake
                self.group.ctx.keep_session(self.ssl_object)  # type: ignore[union-attr]
            out.tell()
            if (self.group.fresh or self.goaway is not None) and not self.streams:
                self.close()   # the last stream of a fresh or GOAWAY'd connection

    def _goaway(self, code: int, last: int) -> None:
        """Streams above `last` were never processed: sent again on a new connection."""
        self.goaway = code
        again = [sid for sid in self.streams if sid > last]
        outs = [self.streams.pop(sid) for sid in again] + list(self.backlog)
        self.backlog.clear()
        self.group.counts["retried"] += len(outs)
        for out in outs:
            self.group.resend(out)
        if not self.streams and self.transport is not None:
            self.transport.close()

    def _next(self) -> None:
        while self.backlog and self.usable and self.h2.open_outbound_streams < \
                self.h2.remote_settings.max_concurrent_streams:
            self.start(self.backlog.popleft())

    def check_timeout(self, now: float) -> None:
        for sid, out in [(s, o) for s, o in self.streams.items() if now > o.deadline]:
            del self.streams[sid]
            self._reset(sid)
            out.fail(RequestFailed(TIMEOUT, "no complete response in time"))
        for out in [o for o in self.backlog if now > o.deadline]:
            self.backlog.remove(out)
            out.fail(RequestFailed(TIMEOUT, "no stream free in time"))
        self._flush()

    def _reset(self, sid: int) -> None:
        try:
            self.h2.reset_stream(sid, ErrorCodes.CANCEL)
        except h2.exceptions.ProtocolError:
            pass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.group.owner.conns.discard(self)
        if self.goaway is not None:
            code = h2_code_name(self.goaway)
            failed = RequestFailed(f"{GOAWAY}/{code}", f"GOAWAY {code}, then closed")
        elif isinstance(exc, ssl.SSLError):
            failed = RequestFailed(classify_stdlib(exc), str(exc))
        else:
            failed = RequestFailed(RESET, "connection closed before the response")
        self._abort(failed)

    def _abort(self, failed: RequestFailed) -> None:
        if not self.settled.done():   # whoever waits for its SETTINGS hears it is gone
            self.settled.set_result(None)
        outs = list(self.streams.values()) + list(self.backlog)
        self.streams.clear()
        self.backlog.clear()
        self.close()
        for out in outs:
            out.fail(failed)

    def _flush(self) -> None:
        self.flush_due = False
        data = self.h2.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def close(self) -> None:
        transport, self.transport = self.transport, None
        self.group.owner.conns.discard(self)
        if transport is not None:
            try:
                self.h2.close_connection()
                transport.write(self.h2.data_to_send())
            except h2.exceptions.ProtocolError:
                pass
            transport.close()


class _Group:
    """Users that share one connection (streams_per_connection of them): it is opened
    once for all who wait, and again after it is gone."""

    def __init__(self, owner: H2Transport, ctx: UserContext | None, fresh: bool) -> None:
        self.owner, self.ctx, self.fresh = owner, ctx, fresh
        self.conn: H2Conn | None = None
        self.opening: asyncio.Future[H2Conn] | None = None
        self.counts = owner.counts

    async def connection(self, k: int) -> H2Conn:
        conn = self.conn
        if conn is not None and conn.usable:
            return conn
        if self.opening is None:
            self.opening = asyncio.ensure_future(self._open(k))
        opening = self.opening
        try:
            return await asyncio.shield(opening)
        finally:
            if opening.done() and self.opening is opening:
                self.opening = None

    async def _open(self, k: int) -> H2Conn:
        owner = self.owner
        host, port = owner.job.host_port
        timeout = owner.job.timeout_s
        loop = asyncio.get_running_loop()
        try:
            transport, conn = await asyncio.wait_for(loop.create_connection(
                lambda: H2Conn(self), host, port), timeout)
        except ConnectionRefusedError as exc:
            raise RequestFailed(CONNECT_REFUSED, str(exc)) from None
        except TimeoutError:
            raise RequestFailed(TIMEOUT, "connect timed out") from None
        except OSError as exc:
            raise RequestFailed(OTHER, str(exc)) from None
        if self.ctx is not None:
            await self._start_tls(loop, transport, conn, k)
        self.counts["connections"] += 1
        try:   # its SETTINGS first: a burst of streams past its cap would be refused
            await asyncio.wait_for(asyncio.shield(conn.settled), timeout)
        except TimeoutError:
            conn.close()
            raise RequestFailed(TIMEOUT, "no SETTINGS from the server in time") from None
        if conn.transport is None:
            raise RequestFailed(RESET, "closed before its SETTINGS")
        self.conn = conn
        return conn

    async def _start_tls(self, loop: asyncio.AbstractEventLoop, transport: Any,
                         conn: H2Conn, k: int) -> None:
        started = time.perf_counter_ns()
        try:
            secure = await asyncio.wait_for(loop.start_tls(
                transport, conn, self.ctx, server_hostname=self.owner.job.host_port[0]),
                self.owner.job.timeout_s)
        except TimeoutError:
            transport.abort()
            raise RequestFailed(TIMEOUT, "TLS handshake timed out") from None
        except ssl.SSLError as exc:
            transport.abort()
            raise RequestFailed(classify_stdlib(exc), str(exc)) from None
        except OSError as exc:
            transport.abort()
            raise RequestFailed(TLS_HANDSHAKE, str(exc) or type(exc).__name__) from None
        if secure is None:
            raise RequestFailed(RESET, "closed during the TLS handshake")
        took = time.perf_counter_ns() - started
        ssl_object = secure.get_extra_info("ssl_object")
        if ssl_object.selected_alpn_protocol() != "h2":
            secure.abort()
            raise RequestFailed(TLS_HANDSHAKE, "the server did not choose HTTP/2 in ALPN "
                                f"(it chose {ssl_object.selected_alpn_protocol()!r})")
        conn.ssl_object = ssl_object
        conn.begin(secure)
        if self.owner.on_handshake is not None:
            self.owner.on_handshake(k, took, ssl_object)

    async def send(self, out: _Out) -> Any:
        """Open (or wait for) the connection, then send: the path off the hot one."""
        conn = await self.connection(out.k)
        out.waiter = asyncio.get_running_loop().create_future()
        conn.start(out)
        return await out.waiter

    def resend(self, out: _Out) -> None:
        """A request a GOAWAY left unprocessed, sent again on a new connection."""
        async def again() -> None:
            try:
                conn = await self.connection(out.k)
            except RequestFailed as exc:
                out.fail(exc)
                return
            conn.start(out)
        task = asyncio.ensure_future(again())
        self.owner.tasks.add(task)
        task.add_done_callback(self.owner.tasks.discard)


class H2Transport(Swept):
    """Groups of users over shared connections, each fixed request's header block built
    once, one sweeper for every stream's deadline."""

    def __init__(self, job: Job, on_handshake: OnHandshake | None = None) -> None:
        super().__init__(job, on_handshake)
        host, port = job.host_port
        scheme = "https" if job.secure else "http"
        self.fixed = []
        for s in job.specs:
            headers = h2_headers(s, scheme, host, port, job.base_path, job.default_port)
            self.fixed.append((headers, s.body, Encoded(stateless_block(headers))))
        self.scheme, self.authority = scheme, (host, port)
        self.contexts = user_contexts(job, job.concurrency)
        self.counts = {"connections": 0, "streams": 0, "retried": 0}
        self.groups: list[_Group] = []
        self.conns: set[H2Conn] = set()   # every open connection, GOAWAY'd ones too
        self.tasks: set[asyncio.Task[None]] = set()

    def user(self, i: int) -> Link:
        job = self.job
        fresh = job.fresh_connections
        per = 1 if fresh else job.streams
        if i % per == 0 or fresh:
            self.groups.append(_Group(self, self.contexts[i], fresh))
        group = self.groups[-1]
        fixed, timeout, max_body = self.fixed, job.timeout_s, job.max_body
        loop = asyncio.get_running_loop()
        scheme, (host, port) = self.scheme, self.authority

        def send(k: int) -> Any:
            headers, body, encoded = fixed[k]
            out = _Out(k, headers, body, loop.time() + timeout, encoded=encoded)
            conn = group.conn
            if conn is not None and conn.usable:
                out.waiter = waiter = loop.create_future()
                conn.start(out)
                return waiter
            return group.send(out)

        def post(k: int, receiver: Receiver) -> bool:
            conn = group.conn
            if conn is None or not conn.usable:
                return False
            headers, body, encoded = fixed[k]
            out = _Out(k, headers, body, loop.time() + timeout, encoded=encoded)
            out.receiver = receiver
            conn.start(out)
            return True

        def exchange(step: Outgoing, view: Any = None) -> Any:
            headers = h2_step_headers(step, scheme, host, port, job.default_port)
            out = _Out(step.k, headers, step.body, loop.time() + timeout,
                       KEEP_BODY if step.wants_body else 1, step.wanted)
            out.max_body = max_body
            return group.send(out)

        def close() -> None:
            if group.conn is not None:
                group.conn.close()
        return Link(send, exchange, close, post)

    def swept(self) -> set[H2Conn]:
        return self.conns

    async def __aexit__(self, *exc: object) -> None:
        for task in self.tasks:
            task.cancel()
        await super().__aexit__(*exc)
