"""The bounds an HTTP/2 peer is held to, read off its frames' 9-byte headers before h2
parses them.

h2 is a correct state machine, not a guard: it acks every PING and SETTINGS, lets a peer
open and reset streams as fast as it likes (CVE-2023-44487, rapid reset) and gathers a
header block's CONTINUATION frames until END_HEADERS (the 2024 CONTINUATION floods). So
each connection's bytes pass this scanner first: it keeps no payload, only each frame's
type, flags and length, and says which bound a read crossed.

Beside it, `stateless_block`: a header list HPACK-encoded once for every connection, the
one HTTP/2 wire helper both ends share (the mock's answers, the harness's fast engine:
transports/http2.py imports it from here, the mockserver importing nothing of the harness).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, \
    WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4

# the offences, as /_mock/stats and the harness's errors name them
RAPID_RESET = "rapid_reset"
CONTINUATION_FLOOD = "continuation_flood"
SETTINGS_FLOOD = "settings_flood"
PING_FLOOD = "ping_flood"
EMPTY_FRAMES = "empty_frame_flood"


@dataclass(frozen=True)
class FrameLimits:
    """Per connection and per second, except the header block's own bounds."""

    resets_per_s: int = 200          # RST_STREAM frames the peer may send
    settings_per_s: int = 50         # SETTINGS frames that are not an ACK
    pings_per_s: int = 50            # PING frames that are not an ACK
    empty_per_s: int = 500           # zero-length DATA/HEADERS/CONTINUATION without an end
    block_frames: int = 32           # CONTINUATION frames in one header block
    block_bytes: int = 64 * 1024     # bytes of one header block, HEADERS and CONTINUATIONs


class FrameGuard:
    """Follows the frame boundaries of one direction of a connection across reads.

    `feed(data, now)` returns the first offence the read commits (a constant above), or
    None. `now` is the caller's clock in seconds: counts are per whole second."""

    __slots__ = ("limits", "skip", "head", "left", "block_frames", "block_bytes", "second",
                 "resets", "settings", "pings", "empty")

    def __init__(self, limits: FrameLimits, preface: bool) -> None:
        self.limits = limits
        self.skip = len(PREFACE) if preface else 0   # a server reads the client's preface
        self.head = b""          # a frame header split across reads
        self.left = 0            # payload bytes of the current frame still to come
        self.block_frames = -1   # -1: no header block open
        self.block_bytes = 0
        self.second = -1
        self.resets = self.settings = self.pings = self.empty = 0

    def feed(self, data: bytes, now: float) -> str | None:
        second = int(now)
        if second != self.second:
            self.second = second
            self.resets = self.settings = self.pings = self.empty = 0
        view = memoryview(data)
        pos, size = 0, len(data)
        if self.skip:
            taken = min(self.skip, size)
            self.skip -= taken
            pos = taken
        limits = self.limits
        while pos < size:
            if self.left:
                taken = min(self.left, size - pos)
                self.left -= taken
                pos += taken
                continue
            need = 9 - len(self.head)
            if size - pos < need:
                self.head += bytes(view[pos:])
                return None
            header = self.head + bytes(view[pos:pos + need]) if self.head else \
                bytes(view[pos:pos + 9])
            self.head = b""
            pos += need
            length = int.from_bytes(header[:3], "big")
            kind, flags = header[3], header[4]
            self.left = length
            offence = self._frame(kind, flags, length, limits)
            if offence is not None:
                return offence
        return None

    def _frame(self, kind: int, flags: int, length: int, limits: FrameLimits) -> str | None:
        if kind in (HEADERS, PUSH_PROMISE):
            if flags & END_HEADERS:
                self.block_frames = -1
            else:
                self.block_frames, self.block_bytes = 0, length
            if length == 0 and not flags & (END_STREAM | END_HEADERS):
                self.empty += 1
        elif kind == CONTINUATION:
            if self.block_frames >= 0:
                self.block_frames += 1
                self.block_bytes += length
                if self.block_frames > limits.block_frames or \
                        self.block_bytes > limits.block_bytes:
                    return CONTINUATION_FLOOD
            if flags & END_HEADERS:
                self.block_frames = -1
            elif length == 0:
                self.empty += 1
        elif kind == RST_STREAM:
            self.resets += 1
            if self.resets > limits.resets_per_s:
                return RAPID_RESET
        elif kind == SETTINGS:
            if not flags & ACK:
                self.settings += 1
                if self.settings > limits.settings_per_s:
                    return SETTINGS_FLOOD
        elif kind == PING:
            if not flags & ACK:
                self.pings += 1
                if self.pings > limits.pings_per_s:
                    return PING_FLOOD
        elif kind == DATA and length == 0 and not flags & END_STREAM:
            self.empty += 1
        if self.empty > limits.empty_per_s:
            return EMPTY_FRAMES
        return None


def _hpack_int(n: int, bits: int, first: int) -> bytes:
    """An HPACK integer with a `bits`-bit prefix (RFC 7541 5.1)."""
    top = (1 << bits) - 1
    if n < top:
        return bytes((first | n,))
    out, n = bytearray((first | top,)), n - top
    while n >= 128:
        out.append((n & 127) | 128)
        n >>= 7
    out.append(n)
    return bytes(out)


def stateless_block(headers: list[tuple[bytes, bytes]]) -> bytes:
    """A header list HPACK-encoded without the dynamic table: a pair in the static table
    by its index, every other header a literal without indexing (its name by the static
    index where there is one), strings as they are. The same bytes are right on every
    block of every connection, so a fixed request's block (the harness's fast engine) or a
    cached answer's (the mock) is encoded once -- h2's encoder cost ~20% of an HTTP/2
    request's client CPU, profiled -- and the peer's decoder table is left as it was."""
    from hpack.table import HeaderTable
    static = HeaderTable.STATIC_TABLE
    pairs: dict[tuple[bytes, bytes], int] = {}
    names: dict[bytes, int] = {}
    for i, pair in enumerate(static, 1):
        pairs.setdefault(pair, i)
        names.setdefault(pair[0], i)
    out = bytearray()
    for name, value in headers:
        if (name, value) in pairs:
            out += _hpack_int(pairs[(name, value)], 7, 0x80)
            continue
        index = names.get(name, 0)
        out += _hpack_int(index, 4, 0x00)
        if not index:
            out += _hpack_int(len(name), 7, 0) + name
        out += _hpack_int(len(value), 7, 0) + value
    return bytes(out)


class Encoded:
    """Stands in for h2's encoder (`conn.encoder`) while one HEADERS goes out: the block
    encoded once by stateless_block."""

    __slots__ = ("block",)

    def __init__(self, block: bytes) -> None:
        self.block = block

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        return self.block
