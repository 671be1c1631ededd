"""A raw HTTP/2 server for tests (h2c by prior knowledge), on sockets and h2's state
machine: it records every request's decoded header list as the client sent it, and can
send a GOAWAY whose last stream id leaves a stream unprocessed (to see that a client
sends it again, once, on a new connection)."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
from h2.errors import ErrorCodes


@dataclass
class H2Peer:
    goaway_when: int = 0      # on the connection that has opened this many streams:
    # answer the first, GOAWAY(last_stream_id = the first), never answer the rest
    requests: list[list[tuple[bytes, bytes]]] = field(default_factory=list)   # answered
    refused: int = 0          # streams left unprocessed by our GOAWAY
    connections: int = 0

    def __post_init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.done = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self.done:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                first = self.connections == 1
            threading.Thread(target=self._serve, args=(conn, first), daemon=True).start()

    def _serve(self, sock: socket.socket, first: bool) -> None:
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

    def stop(self) -> None:
        self.done = True
        self.sock.close()
