"""A [[data]] file's rows held as the file's own bytes and two offset arrays, not as Python
strings: 16 M short rows are about 64 MiB of text and 128 MiB of offsets instead of ~3 GB of
tuples (a 60 MiB file took 44 s and 3 GB to validate, and a Job of 2 M rows stalled the
control channel). The scenario check and every load process read the same bytes: the
scenario builds a table once to validate it, the coordinator ships the bytes to each worker
apart from the control messages, and each load process builds its table again (milliseconds).

A file without a double quote is split with numpy (newlines, then commas per row, counted
with reduceat: no per-row Python); one with quotes goes through the csv module, as RFC 4180
quoting needs (slower, and held as tuples -- such files are the small, hand-written kind).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import numpy as np

NL, CR, COMMA, QUOTE = 10, 13, 44, 34
CHUNK = 1 << 20
MAX_DATA_BYTES = 64 << 20   # a [[data]] file larger than this is refused


class CsvError(ValueError):
    """A file that is not a CSV of rows under a header: says what (never echoes values)."""


class DataRows:
    """The rows under the header: len(), rows[i] -> tuple of str."""

    def __init__(self, body: bytes, width: int, offset: int = 0) -> None:
        """The rows of `body` from `offset` on (the header before it is not copied off)."""
        self.body = body
        self.width = width
        self.offset = offset
        self.tuples: list[tuple[str, ...]] | None = None
        if body.find(b'"', offset) >= 0:
            self.tuples = _quoted_rows(body[offset:], width, body.count(b"\n", 0, offset))
            self.starts = self.ends = np.zeros(0, dtype=np.int64)
            return
        buf = np.frombuffer(body, dtype=np.uint8)
        dtype = np.int32 if len(buf) < 2**31 - 1 else np.int64   # half the memory
        # newlines found 1 MiB at a time: no file-sized temporaries but the result
        nl = np.concatenate([np.flatnonzero(buf[a:a + CHUNK] == NL).astype(dtype) + a
                             for a in range(offset, len(buf), CHUNK)] or
                            [np.zeros(0, dtype=dtype)])
        ends = np.empty(len(nl) + 1, dtype=dtype)
        ends[:-1] = nl
        ends[-1] = len(buf)
        del nl
        starts = np.empty(len(ends), dtype=dtype)
        starts[0] = offset
        np.add(ends[:-1], 1, out=starts[1:])
        # a CR before the LF belongs to the line ending
        before = ends - 1
        np.maximum(before, 0, out=before)
        cr = buf[before] == CR
        del before
        cr &= ends > starts
        ends -= cr
        del cr
        keep = ends > starts   # blank lines are no rows (as the csv module reads them)
        if not keep[:-1].all():
            starts, ends = starts[keep], ends[keep]
        elif not keep[-1]:   # the usual last newline: a view, not a copy
            starts, ends = starts[:-1], ends[:-1]
        del keep
        self.starts, self.ends = starts, ends
        if len(self.starts):
            commas = _count_before(buf, ends, COMMA)
            commas -= _count_before(buf, starts, COMMA)
            bad = np.flatnonzero(commas != width - 1)
            if len(bad):
                i = int(bad[0])
                line = body.count(b"\n", 0, int(starts[i])) + 1
                raise CsvError(f"line {line}: expected {width} fields, got "
                               f"{int(commas[i]) + 1}")

    def __len__(self) -> int:
        return len(self.tuples) if self.tuples is not None else len(self.starts)

    def __getitem__(self, i: int) -> tuple[str, ...]:
        if self.tuples is not None:
            return self.tuples[i]
        return tuple(self.body[self.starts[i]:self.ends[i]].decode("utf-8").split(","))

    def suspects(self, wanted: bytes) -> Iterator[int]:
        """Indexes of the rows holding any byte of `wanted` or a non-ASCII byte: what a
        header check must look at (every other row is printable ASCII already)."""
        if self.tuples is not None:
            yield from range(len(self.tuples))
            return
        buf = np.frombuffer(self.body, dtype=np.uint8)
        mask = buf >= 0x80
        for b in wanted:
            mask |= buf == b
        if not mask.any():
            return
        at = np.flatnonzero(mask)
        del mask
        at = at[at >= self.starts[0]] if len(self.starts) else at[:0]   # not the header
        # the row of each suspect byte: the last row starting at or before it
        rows = np.searchsorted(self.starts, at.astype(self.starts.dtype), "right") - 1
        yield from (int(i) for i in np.unique(rows))


def _count_before(buf: np.ndarray, positions: np.ndarray, byte: int) -> np.ndarray:
    """How many `byte`s lie before each of the (ascending) positions, counted a chunk at
    a time: no file-sized int array (np.add.reduceat casts its whole input first)."""
    out = np.empty(len(positions), dtype=positions.dtype)
    carry = 0
    lo = 0
    for a in range(0, len(buf), CHUNK):
        # the key in the array's own type: another makes numpy cast the whole array
        hi = int(np.searchsorted(positions, positions.dtype.type(min(a + CHUNK, len(buf))),
                                 "left"))
        if hi > lo:
            cum = np.cumsum(buf[a:a + CHUNK] == byte, dtype=positions.dtype)
            p = positions[lo:hi] - a
            got = np.where(p > 0, cum[np.maximum(p - 1, 0)], 0) + carry
            out[lo:hi] = got
            carry += int(cum[-1])
        else:
            carry += int(np.count_nonzero(buf[a:a + CHUNK] == byte))
        lo = hi
    out[lo:] = carry   # positions at the very end of the buffer
    return out


def _quoted_rows(body: bytes, width: int, lines_before: int) -> list[tuple[str, ...]]:
    """RFC 4180 rows through the csv module; `lines_before`: the header's lines, for the
    line an error names."""
    reader = csv.reader(io.StringIO(body.decode("utf-8"), newline=""), strict=True)
    rows = []
    try:
        for row in reader:
            if not row:
                continue
            if len(row) != width:
                raise CsvError(f"line {lines_before + reader.line_num}: expected {width} "
                               f"fields, got {len(row)}")
            rows.append(tuple(row))
    except csv.Error as exc:
        raise CsvError(f"expected CSV ({exc})") from None
    return rows


def split_header(data: bytes) -> tuple[list[str], int]:
    """(the header's fields, the offset of the rows under it) -- no copy of the rows; a
    UTF-8 BOM and blank lines before the header are skipped."""
    at = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    while data.startswith(b"\n", at) or data.startswith(b"\r\n", at):
        at += 1 if data[at] == NL else 2
    if at >= len(data):
        return [], len(data)
    end = _first_record_end(data, at)
    line = data[at:end]
    if QUOTE in line:
        try:
            header = next(csv.reader(io.StringIO(line.decode("utf-8"), newline=""),
                                     strict=True))
        except (csv.Error, StopIteration) as exc:
            raise CsvError(f"expected CSV ({exc})") from None
        return header, end
    return line.rstrip(b"\r\n").decode("utf-8").split(","), end


def _first_record_end(data: bytes, at: int) -> int:
    """Where the first CSV record from `at` ends, its line ending included (a quoted field
    may hold newlines)."""
    nl = data.find(b"\n", at)
    if nl < 0:
        return len(data)
    if data.find(b'"', at, nl) < 0:
        return nl + 1
    inside = False
    for i in range(at, len(data)):
        b = data[i]
        if b == QUOTE:
            inside = not inside
        elif b == NL and not inside:
            return i + 1
    return len(data)
