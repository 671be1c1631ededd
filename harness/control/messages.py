"""Coordinator <-> worker messages: msgpack maps over ZeroMQ, a protocol version in each.

Every message is one frame (after ROUTER's identity frame) holding a map with `v` (the
protocol version), `t` (the type) and the type's fields. `decode` checks all of that and
raises Malformed for anything else, so a receiver can drop and count bad input instead of
crashing on it.
"""

from __future__ import annotations

from typing import Any

import msgpack

from harness.core.timing import HEARTBEAT_S  # noqa: F401 - read with the wire's names

VERSION = 5                # 2: WRAPUP and SPARE; 3: the Job carries TLS and journeys;
                           # 4: WELCOME names the run, STATS are numbered (worker journals);
                           # 5: a cell's histogram is its occupied counters (hdr.encode_sparse)

# Silence after which the coordinator marks a worker lost (--lost-after): several seconds,
# because TCP's retransmission backoff (0.2 + 0.4 + 0.8 s ...) stretches a 1 s network cut
# into more than 2 s of silence. A lost worker that speaks again is re-admitted.
LOST_AFTER_S = 4.0
# A worker stops its load after this many times the coordinator's lost_after of silence
# (at once when the coordinator's connection closes: it was killed, not cut off).
PATIENCE_FACTOR = 3

# type -> {field: accepted python types}
SCHEMA: dict[str, dict[str, tuple[type, ...]]] = {
    "HELLO": {"name": (str,), "pid": (int,), "host": (str,)},
    "WELCOME": {"index": (int,), "lost_after": (float, int), "run": (str,)},
    "REFUSE": {"reason": (str,)},
    "PREPARE": {"model": (int,), "job": (dict,)},
    "READY": {"model": (int,)},
    "START": {"model": (int,), "start_in": (float, int)},
    # sent: so far; seq: the worker's count of its STATS (its journal says which the
    # coordinator never had: harness report --add)
    "STATS": {"model": (int,), "cells": (list,), "sent": (int,), "seq": (int,)},
    "DONE": {"model": (int,), "totals": (dict,), "error": (str,)},
    # a [[data]] file's bytes, before PREPARE, in chunks a worker acknowledges (HAVE):
    # apart from the Job, so a 64 MiB table never stalls the control channel
    "DATA": {"table": (str,), "offset": (int,), "total": (int,), "chunk": (bytes,)},
    "HAVE": {"table": (str,), "got": (int,)},
    "HEARTBEAT": {},
    "ABORT": {"reason": (str,)},
    "WRAPUP": {},          # the load is over; the coordinator writes results, then says BYE
    "SPARE": {},           # the run has all its workers: wait (for BYE) instead of failing
    "BYE": {},
}


class Malformed(ValueError):
    """A frame that is not a valid message of this protocol version."""


class VersionMismatch(Malformed):
    def __init__(self, version: Any) -> None:
        super().__init__(f"protocol version {version!r}, this side speaks {VERSION}")
        self.version = version


BOUNDED_TEXT = ("name", "host")   # HELLO's: printable, at most MAX_TEXT characters
MAX_TEXT = 256
MAX_FRAME = 64 << 20     # the coordinator's socket drops a peer that sends a larger frame


def encode(kind: str, **fields: Any) -> bytes:
    assert kind in SCHEMA, kind
    return msgpack.packb({"v": VERSION, "t": kind, **fields}, use_bin_type=True)


def decode(frame: bytes) -> dict[str, Any]:
    try:
        msg = msgpack.unpackb(frame, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise Malformed(f"not msgpack: {type(exc).__name__}") from None
    if not isinstance(msg, dict):
        raise Malformed(f"expected a map, got {type(msg).__name__}")
    kind = msg.get("t")
    if kind not in SCHEMA:
        raise Malformed(f"unknown message type {kind!r}")
    if msg.get("v") != VERSION:
        raise VersionMismatch(msg.get("v"))
    for name, types in SCHEMA[kind].items():
        value = msg.get(name)
        if not isinstance(value, types) or isinstance(value, bool):
            raise Malformed(f"{kind}.{name}: expected {types[0].__name__}, got {value!r:.40}")
        if name in BOUNDED_TEXT and not (0 < len(value) <= MAX_TEXT and value.isprintable()):
            # a worker's name and host go into the journal, meta.json and stderr lines:
            # a 100 MB name filled a disk in a few HELLOs
            raise Malformed(f"{kind}.{name}: expected 1-{MAX_TEXT} printable characters")
    return msg


def check_cells(cells: list[Any]) -> list[tuple[int, str, dict[str, Any]]]:
    """STATS cells: [interval, request name, {hist: bytes, errors: {kind: n}, bytes: n,
    n: requests in hist, p99_us: that worker's p99, statuses: {status: n}, tls: handshake
    durations, when the cell's requests opened TLS connections}]. The histograms are
    decoded later (ModelResult.take); a cell that does not decode then is dropped and
    counted."""
    out = []
    for cell in cells:
        if not (isinstance(cell, list | tuple) and len(cell) == 3 and isinstance(cell[0], int)
                and isinstance(cell[1], str) and isinstance(cell[2], dict)
                and isinstance(cell[2].get("hist"), bytes)
                and isinstance(cell[2].get("errors"), dict)
                and isinstance(cell[2].get("bytes"), int)
                and isinstance(cell[2].get("n"), int)
                and all(isinstance(v, int) for v in cell[2]["errors"].values())
                and isinstance(cell[2].get("tls", b""), bytes)
                and isinstance(cell[2].get("statuses", {}), dict)
                and all(isinstance(k, int) and isinstance(v, int)
                        for k, v in cell[2].get("statuses", {}).items())):
            raise Malformed("STATS.cells: expected [interval, name, {hist, errors, bytes}]")
        out.append((cell[0], cell[1], cell[2]))
    return out
