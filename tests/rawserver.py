"""A raw-socket HTTP/1.1 server for tests: it records every request head it reads, and can
behave as ordinary servers do at the edges -- close after N responses (nginx's
keepalive_requests, gunicorn's sync worker), or answer as HTTP/1.0 without keep-alive.

Written on sockets, not http.server, so that what the client put on the wire is what we
see (http.server normalises nothing, but its handler hides the raw header order)."""

from __future__ import annotations

import functools
import socket
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field

# A hostile target's answers after the head of a request (`fault`); each ends by the
# client's hanging up (the server sends until its write fails) or as said.
FAULTS = ("endless", "huge_length", "gzip_bomb", "reset_mid_body", "close_mid_body",
          "close_before_answer", "short_length")
BOMB_MIB = 512


@functools.cache
def gzip_bomb() -> bytes:
    """BOMB_MIB MiB of zeros gzipped (about 0.5 MiB on the wire)."""
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    return b"".join([*(comp.compress(zeros) for _ in range(BOMB_MIB)), comp.flush()])


@dataclass
class Seen:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    at: float = 0.0     # wall time the head was read (which model's window it fell in)


class Listening:
    """A loopback listener serving each connection in a thread of its own: `_serve(conn,
    n)` with n its ordinal (1 for the first). Subclasses call `listen()` when set up."""

    connections: int
    sock: socket.socket

    def listen(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                n = self.connections
            threading.Thread(target=self._serve, args=(conn, n), daemon=True).start()

    def _serve(self, conn: socket.socket, n: int) -> None:
        raise NotImplementedError


@dataclass
class RawServer(Listening):
    close_after: int | None = None      # responses per connection; the last says close
    http10: bool = False                # answer HTTP/1.0 without keep-alive (then close)
    body: bytes = b"ok"
    redirect: str | None = None         # answer 301 to this Location (but for itself)
    fault: str | None = None            # one of FAULTS: a hostile answer to every request
    extra_headers: str = ""             # lines added to every ordinary answer ("K: v\r\n")
    requests: list[Seen] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        if self.fault == "gzip_bomb":
            gzip_bomb()   # made before the first request waits for it
        self.listen()

    def _serve(self, conn: socket.socket, n: int) -> None:
        buf = b""
        answered = 0
        conn.settimeout(30)
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:]]
                length = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
                while len(buf) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                body, buf = buf[:length], buf[length:]
                with self.lock:
                    self.requests.append(Seen(method, target, headers, body, time.time()))
                answered += 1
                if self.fault == "gzip_bomb":   # compressed though we asked for identity
                    bomb = gzip_bomb()
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n"
                                 b"Content-Length: %d\r\n\r\n" % len(bomb) + bomb)
                    continue
                if self.fault == "short_length":   # says 2 bytes, sends 7, keeps alive
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")
                    continue
                if self.fault is not None:
                    self._hostile(conn)
                    return
                last = self.http10 or (self.close_after is not None
                                       and answered >= self.close_after)
                status = "HTTP/1.0 200 OK" if self.http10 else "HTTP/1.1 200 OK"
                close = "Connection: close\r\n" if last and not self.http10 else ""
                close += self.extra_headers
                if self.redirect is not None and target != self.redirect:
                    status = "HTTP/1.1 301 Moved Permanently"
                    close += f"Location: {self.redirect}\r\n"
                conn.sendall(f"{status}\r\nContent-Length: {len(self.body)}\r\n{close}\r\n"
                             .encode() + self.body)
                if last:
                    return
        except OSError:
            return
        finally:
            conn.close()

    def _hostile(self, conn: socket.socket) -> None:
        """The fault's answer; sendall fails once the client has hung up."""
        block = b"x" * (1 << 16)
        if self.fault == "endless":   # chunks for ever
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            while not self.stopped:
                conn.sendall(b"10000\r\n" + block + b"\r\n")
        elif self.fault == "huge_length":   # says 1 TiB and keeps sending
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (1 << 40))
            while not self.stopped:
                conn.sendall(block)
        elif self.fault == "close_before_answer":
            return   # the request read, then a close (FIN) without a byte of answer
        else:   # a tenth of the body said, then a reset (RST) or a close (FIN)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + block[:10000])
            if self.fault == "reset_mid_body":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def stop(self) -> None:
        self.stopped = True
        self.sock.close()
