"""[[data]] files to workers, apart from the control messages: each table's bytes go out in
1 MiB DATA chunks, at most WINDOW unacknowledged per worker and table (each HAVE says how
much arrived), before the PREPARE that names the table. Heartbeats and STATS flow between
the chunks, so a 64 MiB table of 16 M rows never stalls the channel (a Job carrying 2 M
rows used to: its worker was lost, 0 requests), and no worker's queue holds a whole copy.
A worker keeps a table for the run: the next model's PREPARE sends nothing again."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

CHUNK = 1 << 20
WINDOW = 8


@dataclass
class _Shipment:
    blob: bytes
    sent: int = 0     # bytes handed to the socket
    got: int = 0      # bytes the worker acknowledged


@dataclass
class DataShipper:
    shipments: dict[tuple[bytes, str], _Shipment] = field(default_factory=dict)

    def plan(self, identity: bytes, entries: list[dict[str, Any]]) -> None:
        """Take each table's blob out of a Job's data entries (PREPARE stays small) and
        plan its shipment to this worker, unless it has it already."""
        for entry in entries:
            blob = entry.pop("blob", b"")
            entry["size"] = len(blob)
            key = (identity, entry["name"])
            if key not in self.shipments:
                self.shipments[key] = _Shipment(blob)

    def step(self, send: Callable[..., None]) -> None:
        """Send what each window allows."""
        for (identity, table), s in self.shipments.items():
            while s.sent < len(s.blob) and s.sent - s.got < WINDOW * CHUNK:
                chunk = s.blob[s.sent:s.sent + CHUNK]
                send(identity, "DATA", table=table, offset=s.sent, total=len(s.blob),
                     chunk=chunk)
                s.sent += len(chunk)

    def ack(self, identity: bytes, table: str, got: int) -> None:
        s = self.shipments.get((identity, table))
        if s is not None:
            s.got = max(s.got, min(got, len(s.blob)))

    def missing(self, identities: set[bytes]) -> int:
        """Bytes those workers have not acknowledged yet."""
        return sum(len(s.blob) - s.got for (who, _), s in self.shipments.items()
                   if who in identities)

    def total(self, identities: set[bytes]) -> int:
        return sum(len(s.blob) for (who, _), s in self.shipments.items() if who in identities)


@dataclass
class DataReceiver:
    """A worker's side: tables assembled from DATA chunks, bounded in number and size (a
    hostile coordinator cannot make it hold more than MAX_TABLES x max_bytes)."""

    max_bytes: int
    tables: dict[str, bytearray] = field(default_factory=dict)
    filled: dict[str, int] = field(default_factory=dict)

    MAX_TABLES = 32

    def take(self, table: str, offset: int, total: int, chunk: bytes) -> int | None:
        """Store a chunk; how much of the table has arrived, or None for a chunk that does
        not fit (refused, counted as dropped by the worker)."""
        if not 0 <= total <= self.max_bytes or offset + len(chunk) > total or offset < 0:
            return None
        buf = self.tables.get(table)
        if buf is None or len(buf) != total:
            if len(self.tables) >= self.MAX_TABLES and table not in self.tables:
                return None
            buf = self.tables[table] = bytearray(total)
            self.filled[table] = 0
        if offset != self.filled[table]:   # chunks come in order; a repeat changes nothing
            return self.filled[table] if offset < self.filled[table] else None
        buf[offset:offset + len(chunk)] = chunk
        self.filled[table] = offset + len(chunk)
        return self.filled[table]

    def blob(self, table: str, size: int) -> bytes | None:
        """The whole table, once every byte of it arrived."""
        if size == 0:
            return b""
        buf = self.tables.get(table)
        if buf is None or len(buf) != size or self.filled.get(table) != size:
            return None
        return bytes(buf)
