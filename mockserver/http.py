"""HTTP/1.1 message pieces: the parsed request, the reply a handler returns, response bytes.

Kept apart from the protocol class so handlers can be read (and tested) without a socket.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

# The methods a scenario, a route or a request spec may name (and the mockserver serves).
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")

# What the connection does after (or instead of) writing a reply.
KEEP, CLOSE, RESET, HANG = 0, 1, 2, 3

_REASONS = {s.value: s.phrase for s in HTTPStatus}
_PATTERN = bytes(33 + (i * 31 + 7) % 94 for i in range(65536))  # deterministic, printable


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    keep_alive: bool
    http_version: str

    def header(self, name: bytes) -> bytes | None:
        """First header value by lower-case name (requests carry few headers: a scan is cheap)."""
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


@dataclass(slots=True)
class Reply:
    """What a handler answers. Exactly one of data/produce/stream carries the response.

    `delay` (s) holds the reply before it may be written, without blocking the connection's
    parser; `produce` is awaited for replies that need I/O first (the admin fan-out);
    `stream` writes a body over time (drip, slow body) once the reply reaches its turn.
    """

    data: bytes = b""
    delay: float = 0.0
    action: int = KEEP
    produce: Callable[[], Awaitable[bytes]] | None = None
    stream: Callable[[Any], Awaitable[None]] | None = None


def body_bytes(n: int) -> bytes:
    """A deterministic body of n bytes, the same on every run and process."""
    if n <= len(_PATTERN):
        return _PATTERN[:n]
    reps, rest = divmod(n, len(_PATTERN))
    return _PATTERN * reps + _PATTERN[:rest]


def head(status: int, length: int | None, keep_alive: bool,
         content_type: bytes = b"application/octet-stream", extra: bytes = b"") -> bytes:
    """The status line and headers; length None means a chunked body."""
    parts = [b"HTTP/1.1 %d %s\r\nServer: mockserver\r\nContent-Type: %s\r\n"
             % (status, _REASONS.get(status, "Unknown").encode(), content_type)]
    if length is None:
        parts.append(b"Transfer-Encoding: chunked\r\n")
    elif status not in (204, 304):
        parts.append(b"Content-Length: %d\r\n" % length)
    if not keep_alive:
        parts.append(b"Connection: close\r\n")
    parts.append(extra)
    parts.append(b"\r\n")
    return b"".join(parts)


def response(status: int, body: bytes, keep_alive: bool, is_head: bool = False,
             content_type: bytes = b"application/octet-stream") -> bytes:
    if status in (204, 304):
        body = b""
    data = head(status, len(body), keep_alive, content_type)
    return data if is_head else data + body


def json_response(status: int, obj: Any, keep_alive: bool, is_head: bool = False) -> bytes:
    body = json.dumps(obj, sort_keys=True).encode() + b"\n"
    return response(status, body, keep_alive, is_head, b"application/json")


def error_response(status: int, message: str) -> bytes:
    """A protocol-level error: always closes the connection afterwards."""
    return json_response(status, {"error": message}, keep_alive=False)
