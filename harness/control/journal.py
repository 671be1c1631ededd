"""The run journal: every STATS the coordinator accepts and every worker event, appended to
`RUN_DIR/journal/events.bin` as it arrives -- the source of truth until the result files
are written, and what `harness report` recovers a run from after a kill -9.

A record is an 8-byte header (payload length, CRC-32 of the payload; big-endian) and a
msgpack map with `k` (the kind) and its fields. A record torn by a kill mid-write, or
damaged, ends the reading there: what came before is intact and is returned, and the
reader says how many bytes it skipped.
"""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

HEADER = struct.Struct(">II")
FILE = "events.bin"
FLUSH_EVERY_S = 1.0


class Journal:
    """Appends records; flushed to the OS at least once a second (and on close)."""

    def __init__(self, run_dir: Path | None = None, *, path: Path | None = None) -> None:
        """The run's journal in RUN_DIR/journal/, or (a worker's own) the file `path`."""
        if path is None:
            assert run_dir is not None
            directory = run_dir / "journal"
            directory.mkdir(exist_ok=True)
            path = directory / FILE
        self.path = path
        self.file = open(self.path, "ab")  # noqa: SIM115 - kept open for the run
        self.last_flush = time.monotonic()
        self.error: OSError | None = None   # a write that failed (disk full): said once
        self.bytes = 0

    def append(self, kind: str, **fields: Any) -> None:
        self.append_record({"k": kind, "at": time.time(), **fields})

    def append_record(self, record: dict[str, Any]) -> None:
        """One record (control.runstate.record makes the run journal's) framed and
        written."""
        if self.file.closed:
            return
        payload = msgpack.packb(record, use_bin_type=True)
        try:
            self.file.write(HEADER.pack(len(payload), zlib.crc32(payload)) + payload)
            self.bytes += HEADER.size + len(payload)
        except OSError as exc:
            self.error = self.error or exc
        self.flush(force=False)

    def flush(self, force: bool = True) -> None:
        if self.file.closed or (not force
                                and time.monotonic() - self.last_flush < FLUSH_EVERY_S):
            return
        self.last_flush = time.monotonic()
        try:
            self.file.flush()
        except OSError as exc:
            self.error = self.error or exc

    def close(self) -> None:
        if self.file.closed:
            return
        self.flush()
        try:
            self.file.close()
        except OSError as exc:
            self.error = self.error or exc


@dataclass
class Reading:
    records: list[dict[str, Any]]
    skipped_bytes: int   # a torn or damaged tail, not read


def read_journal(run_dir: Path) -> Reading:
    """Every intact record of the run's journal, in order."""
    return read_records(run_dir / "journal" / FILE)


def iter_records(path: Path) -> Iterator[dict[str, Any]]:
    """Every intact record of a journal file, read a record at a time (a long run's
    journal is GBs: never held whole); stops at the first torn or damaged one."""
    with open(path, "rb") as f:
        for record, _ in _records(f):
            yield record


def read_records(path: Path) -> Reading:
    """Every intact record of a journal file, in order, and how many bytes after the last
    intact one were skipped."""
    records: list[dict[str, Any]] = []
    intact = 0
    with open(path, "rb") as f:
        for record, end in _records(f):
            records.append(record)
            intact = end
        size = f.seek(0, 2)
    return Reading(records, size - intact)


def _records(f: Any) -> Iterator[tuple[dict[str, Any], int]]:
    """(record, offset after it) of each frame whose length, CRC and msgpack map check
    out, from the start of `f`; ends at the first that does not."""
    at = 0
    while len(head := f.read(HEADER.size)) == HEADER.size:
        length, crc = HEADER.unpack(head)
        payload = f.read(length)
        if len(payload) < length or zlib.crc32(payload) != crc:
            return
        try:
            record = msgpack.unpackb(payload, raw=False, strict_map_key=False)
        except Exception:  # msgpack raises several types on garbage
            return
        if not isinstance(record, dict):
            return
        at += HEADER.size + length
        yield record, at
