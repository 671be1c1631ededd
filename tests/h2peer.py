"""A raw HTTP/2 server for tests (h2c by prior knowledge), on sockets and h2's state
machine: it records every request's decoded header list as the client sent it, and can
send a GOAWAY whose last stream id leaves a stream unprocessed (to see that a client
sends it again, once, on a new connection)."""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
from h2.errors import ErrorCodes
from hyperframe.frame import ContinuationFrame, HeadersFrame, PingFrame

from tests.rawserver import Listening

# A hostile server's ways (`fault`), each from the first request on: an answer whose body
# never ends (within flow control, so the client keeps opening its window), PING frames
# without end, a header block of CONTINUATION frames without end, a header list far
# beyond any limit, or nothing at all (not even SETTINGS).
FAULTS = ("endless_body", "ping_flood", "continuation_flood", "huge_headers", "silent")


@dataclass
class H2Peer(Listening):
    fault: str | None = None  # one of FAULTS
    goaway_when: int = 0      # on the connection that has opened this many streams:
    # answer the first, GOAWAY(last_stream_id = the first), never answer the rest
    requests: list[list[tuple[bytes, bytes]]] = field(default_factory=list)   # answered
    refused: int = 0          # streams left unprocessed by our GOAWAY
    connections: int = 0

    def __post_init__(self) -> None:
        self.listen()

    def _serve(self, sock: socket.socket, n: int) -> None:
        first = n == 1
        if self.fault is not None:
            with sock, contextlib.suppress(OSError):
                self._hostile(sock)
            return
        h2c = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding=None))
        h2c.initiate_connection()
        sock.sendall(h2c.data_to_send())
        opened: list[tuple[int, list[tuple[bytes, bytes]]]] = []
        went_away = False
        with sock:
            while True:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                for event in h2c.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        opened.append((event.stream_id, list(event.headers)))
                        if went_away:
                            continue
                        if first and self.goaway_when and len(opened) == self.goaway_when:
                            sid, headers = opened[0]
                            self._answer(h2c, sid, headers)
                            h2c.close_connection(ErrorCodes.NO_ERROR, last_stream_id=sid)
                            with self.lock:
                                self.refused += len(opened) - 1
                            went_away = True
                        elif not (first and self.goaway_when):
                            self._answer(h2c, event.stream_id, list(event.headers))
                    elif isinstance(event, h2.events.DataReceived):
                        h2c.acknowledge_received_data(event.flow_controlled_length,
                                                      event.stream_id)
                out = h2c.data_to_send()
                if out:
                    sock.sendall(out)
                if went_away:
                    return

    def _answer(self, h2c: h2.connection.H2Connection, sid: int,
                headers: list[tuple[bytes, bytes]]) -> None:
        with self.lock:
            self.requests.append(headers)
        h2c.send_headers(sid, [(b":status", b"200"), (b"content-length", b"2")])
        h2c.send_data(sid, b"ok", end_stream=True)

    def _hostile(self, sock: socket.socket) -> None:
        """Read the client's preface and first request, then misbehave until it hangs up
        (or the server stops)."""
        if self.fault == "silent":
            while not self.stopped and sock.recv(65536):
                pass
            return
        h2c = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding=None, validate_outbound_headers=False))
        h2c.initiate_connection()
        sock.sendall(h2c.data_to_send())
        sid = None
        while sid is None:
            data = sock.recv(65536)
            if not data:
                return
            for event in h2c.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    sid = event.stream_id
            sock.sendall(h2c.data_to_send())
        with self.lock:
            self.requests.append([])
        sock.settimeout(0.05)
        active = {sid}
        if self.fault == "huge_headers":
            h2c.send_headers(sid, [(b":status", b"200")] + [(b"x-%d" % i, b"v" * 1000)
                                                            for i in range(200)])
            sock.sendall(h2c.data_to_send())
        elif self.fault == "endless_body":
            h2c.send_headers(sid, [(b":status", b"200")])
        elif self.fault == "continuation_flood":
            head = HeadersFrame(sid)
            head.data = b"\x88"   # :status 200, and never END_HEADERS
            sock.sendall(h2c.data_to_send() + head.serialize())
        while not self.stopped:
            if self.fault == "ping_flood":
                sock.sendall(b"".join(PingFrame(0, b"%08d" % i).serialize()
                                      for i in range(100)))
            elif self.fault == "continuation_flood":
                frame = ContinuationFrame(sid)
                frame.data = b"\x40\x01a\x01b" * 100
                sock.sendall(frame.serialize() * 10)
            elif self.fault == "endless_body":   # every stream the client opens, for ever
                for open_sid in active:
                    window = min(h2c.local_flow_control_window(open_sid), 16384)
                    if window > 0:
                        h2c.send_data(open_sid, b"z" * window)
                sock.sendall(h2c.data_to_send())
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                return
            if self.fault == "endless_body":
                for event in h2c.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        h2c.send_headers(event.stream_id, [(b":status", b"200")])
                        active.add(event.stream_id)
                    elif isinstance(event, h2.events.StreamReset):
                        active.discard(event.stream_id)

    def stop(self) -> None:
        self.stopped = True
        self.sock.close()
