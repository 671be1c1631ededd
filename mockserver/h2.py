"""The HTTP/2 front end: one asyncio.Protocol per connection over h2's sans-IO state
machine, each stream's request handed to the same `App.handle` as HTTP/1.1's.

A connection becomes this protocol from HttpProtocol (protocol.py) at once when TLS's ALPN
chose `h2`, or when a plain connection's first bytes are the HTTP/2 preface (h2c with
prior knowledge, as h2load and curl --http2-prior-knowledge send it). The app answers in
HTTP/1.1 bytes (its replies are cached that way); `split_reply` turns a head into a
status and h2 headers once per distinct reply, the connection-specific ones dropped.

Bounded against the known HTTP/2 attacks: every read passes h2frames.FrameGuard first
(rapid reset, CONTINUATION, SETTINGS, PING and empty-frame floods), h2 itself refuses a
stream beyond SETTINGS_MAX_CONCURRENT_STREAMS and a header list beyond
SETTINGS_MAX_HEADER_LIST_SIZE, and the idle sweeper closes a connection whose answer sits
behind a zero window past limits.request_timeout_s. Each closes the offender with GOAWAY
and its code, and is counted in /_mock/stats under `h2.offenders`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

from mockserver.h2frames import Encoded, FrameGuard, FrameLimits, stateless_block
from mockserver.http import HANG, RESET, Reply, Request, error_response
from mockserver.state import ServerState

MAX_STREAMS = 128            # SETTINGS_MAX_CONCURRENT_STREAMS we advertise
WINDOW = 1 << 20             # our receive window per stream (request bodies)
ADMIN_BODY_BYTES = 1 << 20
_DROP = frozenset((b"connection", b"keep-alive", b"transfer-encoding", b"proxy-connection",
                   b"upgrade"))
_SPLIT_CACHE_MAX = 512
Split = tuple[list[tuple[bytes, bytes]], bytes, Encoded]   # headers, body, HPACK block
_split_cache: dict[int, tuple[bytes, Split | None]] = {}

ZERO_WINDOW = "zero_window"
TOO_MANY_STREAMS = "too_many_streams"
HEADER_LIST = "header_list_too_large"
PROTOCOL = "protocol_error"


def split_reply(data: bytes) -> Split | None:
    """An HTTP/1.1 response's bytes as (h2 headers with :status first, body, the headers'
    HPACK block), or None when they are no HTTP/1.1 response (the malformed fault's
    garbage). Cached per reply object: the app hands out the same cached bytes for the
    same answer, whose block is then encoded once (h2frames.stateless_block)."""
    hit = _split_cache.get(id(data))
    if hit is not None and hit[0] is data:
        return hit[1]
    head, sep, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    out: Split | None = None
    status = lines[0][9:12]
    if sep and lines[0].startswith(b"HTTP/1.") and status.isdigit():
        headers = [(b":status", status)]
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            name = name.strip().lower()
            if colon and name not in _DROP:
                headers.append((name, value.strip()))
        out = (headers, body, Encoded(stateless_block(headers)))
    if len(_split_cache) >= _SPLIT_CACHE_MAX:
        _split_cache.clear()
    _split_cache[id(data)] = (data, out)
    return out


class _Stream:
    __slots__ = ("headers", "body", "size", "dispatched", "out", "end", "drained", "timer",
                 "stalled_at", "task")

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.headers = headers
        self.body: list[bytes] = []
        self.size = 0
        self.dispatched = False   # the request is whole and with the app
        self.out = b""            # answer bytes waiting for window
        self.end = False          # END_STREAM goes with the last of `out`
        self.drained: asyncio.Future[None] | None = None   # a streamed body waits on it
        self.timer: asyncio.TimerHandle | None = None
        self.stalled_at: float | None = None
        self.task: asyncio.Task[None] | None = None


class _StreamWriter:
    """What a streamed body (routes.paced_body, chunked=False) writes through: DATA frames
    on its stream, paced by the stream's window."""

    def __init__(self, proto: H2Protocol, sid: int) -> None:
        self.proto, self.sid = proto, sid

    def write(self, data: bytes) -> None:
        if not self.proto.send_body(self.sid, data, end=False):
            raise ConnectionResetError("stream gone")

    async def drain(self) -> None:
        await self.proto.stream_drained(self.sid)


class H2Protocol(asyncio.Protocol):
    """One HTTP/2 connection. Presents what the server's idle sweeper and limits need of a
    connection (state.Connection), as HttpProtocol does."""

    def __init__(self, state: ServerState, handler: Callable[[Request], Reply]) -> None:
        self.state = state
        self.handler = handler
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        limits = state.config.limits
        # our answers' headers come from split_reply, lower-cased and valid: h2 need not
        # normalise and check them again on every answer (a peer's are still checked)
        config = h2.config.H2Configuration(client_side=False, header_encoding=None,
                                           normalize_outbound_headers=False,
                                           validate_outbound_headers=False)
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_STREAMS,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: limits.max_header_bytes,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW,
        })
        # h2 applies our SETTINGS to its decoder only once the peer acks them: a peer that
        # never acks would be held to h2's default (64 KiB) instead
        self.conn.decoder.max_header_list_size = limits.max_header_bytes
        self.guard = FrameGuard(FrameLimits(block_bytes=limits.max_header_bytes), True)
        self.streams: dict[int, _Stream] = {}
        self.active = True
        self.last_active = self.loop.time()
        self.messages = 0
        self.stuck_at: tuple[int, float] | None = None
        self.reading = False             # in data_received: one write at its end
        self.highest = 0                 # the highest stream id the peer opened
        self.last: int | None = None     # our GOAWAY's last stream id, once sent
        self.paused: asyncio.Future[None] | None = None

    # -- connection lifecycle -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """A new connection (TLS with ALPN h2): counted as HttpProtocol counts one."""
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.state.handshake_done(ssl_object)
        if not self.state.connection_opened(self):
            transport.abort()
            return
        self.adopt(transport)

    def adopt(self, transport: asyncio.BaseTransport) -> None:
        """Take over a connection already counted (h2c: HttpProtocol saw the preface)."""
        self.transport = transport  # type: ignore[assignment]
        self.state.stats.h2_connections += 1
        self.conn.initiate_connection()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.connection_closed(self)
        self.transport = None
        for st in self.streams.values():
            self._drop(st)
        self.streams.clear()
        if self.paused is not None and not self.paused.done():
            self.paused.set_result(None)

    def pause_writing(self) -> None:
        self.paused = self.loop.create_future()

    def resume_writing(self) -> None:
        if self.paused is not None and not self.paused.done():
            self.paused.set_result(None)
        self.paused = None

    @property
    def idle(self) -> bool:
        return not self.streams

    @property
    def owes_reply(self) -> bool:
        return any(st.dispatched for st in self.streams.values())

    @property
    def mid_request(self) -> bool:
        """A request begun and not ended, or an answer held behind a zero window: either
        way the peer, not we, keeps the connection from moving on."""
        return any(not st.dispatched or st.stalled_at is not None
                   for st in self.streams.values())

    def request_timed_out(self) -> None:
        if any(st.stalled_at is not None for st in self.streams.values()):
            self._offend(ZERO_WINDOW, ErrorCodes.ENHANCE_YOUR_CALM)
        else:
            self.state.stats.request_timeouts += 1
            self._goaway(ErrorCodes.NO_ERROR, b"request not received in time")

    def shutdown(self) -> None:
        """The server is stopping: GOAWAY, close once the streams already open end."""
        self.drain()

    def drain(self, code: int = ErrorCodes.NO_ERROR, debug: bytes = b"") -> bool:
        """A graceful GOAWAY (the server stopping, or the admin's /_mock/goaway): the
        streams received so far are answered, any the peer opens after it are refused
        and never counted (it sends them again elsewhere), then the connection closes.
        Written as a frame of our own: h2's close_connection would end our answers too.
        False when it had been sent one already (or is gone)."""
        if self.transport is None or self.last is not None:
            return False
        self._flush()
        self.last = self.highest
        frame = GoAwayFrame(0)
        frame.last_stream_id, frame.error_code, frame.additional_data = \
            self.highest, code, debug
        self.transport.write(frame.serialize())
        self.state.stats.h2_goaways += 1
        self._flush()
        return True

    # -- reading --------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        self.active = True
        offence = self.guard.feed(data, self.loop.time())
        if offence is not None:
            self._offend(offence, ErrorCodes.ENHANCE_YOUR_CALM)
            return
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.TooManyStreamsError:
            self._offend(TOO_MANY_STREAMS, ErrorCodes.PROTOCOL_ERROR)
            return
        except h2.exceptions.DenialOfServiceError:
            self._offend(HEADER_LIST, ErrorCodes.ENHANCE_YOUR_CALM)
            return
        except h2.exceptions.ProtocolError as exc:
            self._offend(PROTOCOL, exc.error_code or ErrorCodes.PROTOCOL_ERROR)
            return
        self.reading = True
        try:
            self._events(events)
        finally:
            self.reading = False
        self._flush()

    def _events(self, events: list[Any]) -> None:
        for event in events:
            kind = type(event)
            if kind is h2.events.RequestReceived:
                self._request(event.stream_id, event.headers,
                              event.stream_ended is not None)
            elif kind is h2.events.DataReceived:
                self._data(event)
            elif kind is h2.events.StreamEnded:
                st = self.streams.get(event.stream_id)
                if st is not None and not st.dispatched:
                    self._dispatch(event.stream_id, st)
            elif kind is h2.events.StreamReset:
                st = self.streams.pop(event.stream_id, None)
                if st is not None:
                    self._drop(st)
            elif kind is h2.events.WindowUpdated:
                self._pump_all() if event.stream_id == 0 else self._pump(event.stream_id)
            elif kind is h2.events.ConnectionTerminated:
                self.transport.close()  # type: ignore[union-attr]
                return

    def _request(self, sid: int, headers: list[tuple[bytes, bytes]], ended: bool) -> None:
        if self.last is not None:   # opened after our GOAWAY: not processed, not counted
            self.conn.reset_stream(sid, ErrorCodes.REFUSED_STREAM)
            return
        self.highest = sid
        self.state.stats.h2_streams += 1
        st = self.streams[sid] = _Stream(headers)
        if ended:
            self._dispatch(sid, st)

    def _data(self, event: h2.events.DataReceived) -> None:
        sid = event.stream_id
        self.conn.acknowledge_received_data(event.flow_controlled_length, sid)
        st = self.streams.get(sid)
        if st is None or st.dispatched:
            return
        st.size += len(event.data)
        path = dict(st.headers).get(b":path", b"")
        limit = self.state.config.limits.max_body_bytes
        if path.startswith(b"/_mock/"):
            limit = max(limit, ADMIN_BODY_BYTES)
        if st.size > limit:
            st.dispatched = True
            self.state.stats.malformed_requests += 1
            self._answer(sid, Reply(error_response(413, "request body too large")))
            return
        st.body.append(event.data)
        if event.stream_ended is not None:
            self._dispatch(sid, st)

    # -- answering ------------------------------------------------------------------------

    def _dispatch(self, sid: int, st: _Stream) -> None:
        st.dispatched = True
        self.messages += 1
        pseudo = {k: v for k, v in st.headers if k[:1] == b":"}
        path, _, query = pseudo.get(b":path", b"/").partition(b"?")
        headers = [(k, v) for k, v in st.headers if k[:1] != b":"]
        if b":authority" in pseudo:
            headers.insert(0, (b"host", pseudo[b":authority"]))
        request = Request(method=pseudo.get(b":method", b"GET").decode("ascii", "replace"),
                          path=path.decode("latin-1"), query=query.decode("latin-1"),
                          headers=headers, body=b"".join(st.body), keep_alive=True,
                          http_version="2")
        st.body = []
        stats = self.state.stats
        stats.fold()
        before = stats.requests_total
        reply = self.handler(request)
        stats.h2_requests += stats.requests_total - before
        if reply.produce is not None:
            st.task = self.loop.create_task(self._produce(sid, reply))
        elif reply.delay > 0:
            st.timer = self.loop.call_later(reply.delay, self._answer, sid, reply)
        else:
            self._answer(sid, reply)

    async def _produce(self, sid: int, reply: Reply) -> None:
        if reply.delay > 0:
            await asyncio.sleep(reply.delay)
        data = await reply.produce()  # type: ignore[misc]
        self._answer(sid, Reply(data, action=reply.action))

    def _answer(self, sid: int, reply: Reply) -> None:
        st = self.streams.get(sid)
        if st is None or self.transport is None:
            return   # reset by the peer meanwhile, or the connection is gone
        st.timer = None
        if reply.action == RESET:
            self._end_stream(sid, ErrorCodes.INTERNAL_ERROR)
            return
        if reply.action == HANG:   # held for its time, then dropped unanswered
            self._end_stream(sid, ErrorCodes.CANCEL)
            return
        parts = split_reply(reply.data)
        if parts is None:   # garbage: the connection is broken for every stream on it
            self.transport.write(reply.data)
            self.state.stats.bytes_out += len(reply.data)
            self.transport.close()
            return
        headers, body, block = parts
        streamed = reply.stream is not None
        whole = not body and not streamed   # the head is all of it (HEAD, 204, ...)
        conn = self.conn
        encoder, conn.encoder = conn.encoder, block   # type: ignore[assignment]
        try:
            conn.send_headers(sid, headers, end_stream=whole)
        except h2.exceptions.ProtocolError:
            whole = True
        finally:
            conn.encoder = encoder
        if whole:
            self.streams.pop(sid, None)
        elif body:
            self.send_body(sid, body, end=not streamed)
        if streamed and not whole:
            st.task = self.loop.create_task(self._stream(sid, reply))
        self._flush()

    async def _stream(self, sid: int, reply: Reply) -> None:
        try:
            await reply.stream(_StreamWriter(self, sid))  # type: ignore[misc]
        except (ConnectionError, asyncio.CancelledError):
            return
        self.send_body(sid, b"", end=True)
        self._flush()

    def send_body(self, sid: int, data: bytes, end: bool) -> bool:
        """Queue answer bytes on a stream and send what its window allows; False when the
        stream is gone (reset by the peer)."""
        st = self.streams.get(sid)
        if st is None or self.transport is None:
            return False
        st.out += data
        st.end = end
        self._pump(sid)
        self._flush()
        return True

    async def stream_drained(self, sid: int) -> None:
        st = self.streams.get(sid)
        if st is not None and st.out:
            st.drained = self.loop.create_future()
            await st.drained
        if self.paused is not None:
            await self.paused

    def _pump(self, sid: int) -> None:
        st = self.streams.get(sid)
        if st is None or not st.dispatched:
            return
        conn = self.conn
        while True:
            window = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
            if not st.out:
                if st.end:
                    conn.send_data(sid, b"", end_stream=True)
                    self.streams.pop(sid, None)
                break
            if window <= 0:
                if st.stalled_at is None:
                    st.stalled_at = self.loop.time()
                return
            chunk, st.out = st.out[:window], st.out[window:]
            last = st.end and not st.out
            conn.send_data(sid, chunk, end_stream=last)
            self.state.stats.bytes_out += len(chunk)
            if last:
                self.streams.pop(sid, None)
                break
        st.stalled_at = None
        if st.drained is not None and not st.drained.done():
            st.drained.set_result(None)

    def _pump_all(self) -> None:
        for sid in [s for s, st in self.streams.items() if st.out or st.end]:
            self._pump(sid)

    def _end_stream(self, sid: int, code: int) -> None:
        st = self.streams.pop(sid, None)
        if st is not None:
            self._drop(st)
        try:
            self.conn.reset_stream(sid, code)
        except h2.exceptions.ProtocolError:
            pass
        self._flush()

    def _drop(self, st: _Stream) -> None:
        if st.timer is not None:
            st.timer.cancel()
        if st.task is not None:
            st.task.cancel()
        if st.drained is not None and not st.drained.done():
            st.drained.set_exception(ConnectionResetError("stream reset"))
            st.drained.exception()   # retrieved: a stream reset mid-drip is no error of ours

    # -- writing and closing --------------------------------------------------------------

    def _flush(self) -> None:
        if self.reading:
            return   # the read being handled writes what it answered at its end, at once
        data = self.conn.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)
        if self.last is not None and self.idle and self.transport is not None:
            self.transport.close()   # drained after our GOAWAY

    def _offend(self, kind: str, code: int) -> None:
        offenders = self.state.stats.h2_offenders
        offenders[kind] = offenders.get(kind, 0) + 1
        self._goaway(code, kind.encode())

    def _goaway(self, code: int, debug: bytes) -> None:
        """GOAWAY with `code` and close: the offender goes, the server stays."""
        transport = self.transport
        if transport is None:
            return
        try:
            self.conn.close_connection(code, additional_data=debug)
        except h2.exceptions.ProtocolError:
            pass
        data = self.conn.data_to_send()
        if data:
            transport.write(data)
        transport.close()
        self.transport = None
        self.state.connection_closed(self)
        for st in self.streams.values():
            self._drop(st)
        self.streams.clear()


def serve_preface(old: Any, state: ServerState, handler: Callable[[Request], Reply],
                  data: bytes) -> None:
    """Hand a plain connection whose first bytes are the HTTP/2 preface to an H2Protocol:
    it keeps its place among the server's connections (counted once)."""
    proto = H2Protocol(state, handler)
    transport = old.transport
    state.replace_connection(old, proto)
    old.transport = None
    transport.set_protocol(proto)
    proto.adopt(transport)
    proto.data_received(data)
