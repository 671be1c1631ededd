"""Reading HDR histograms with numpy: percentiles, mean, min and max from the counts array
in one pass each, exactly as hdrh computes them (a test holds them equal on random data).

hdrh's own readers loop over ~23,000 buckets in Python: get_mean_value once per
timeseries row took 97% of a 50-name run's 232 s of result writing. Every histogram here
has the same layout (stats.new_histogram), so the value of each bucket is computed once.
"""

from __future__ import annotations

import base64
import ctypes
import math
import struct
import zlib
from functools import cache
from typing import Any

import numpy as np
from hdrh.codec import MAX_COUNTS_SIZE, payload_header_size
from hdrh.histogram import HdrHistogram
from pyhdrh import decode as decode_payload  # hdrh's own C varint decoder


@cache
def _bucket_values(counts_len: int, half_magnitude: int, unit_magnitude: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bucket index: lowest and highest equivalent value, and the median-equivalent
    value hdrh uses for the mean."""
    index = np.arange(counts_len, dtype=np.int64)
    half = 1 << half_magnitude
    bucket = (index >> half_magnitude) - 1
    sub = (index & (half - 1)) + half
    first = bucket < 0
    sub = np.where(first, sub - half, sub)
    bucket = np.where(first, 0, bucket)
    lowest = sub << (bucket + unit_magnitude)
    size = np.int64(1) << (bucket + unit_magnitude)
    return lowest, lowest + size - 1, lowest + (size >> 1)


def add_into(dst: HdrHistogram, src: HdrHistogram) -> None:
    """dst += src, as hdrh's `add`, over src's occupied range only: hdrh adds all ~23,000
    counters (70 us), which a wide run's coordinator did ~1,500 times a second."""
    if (dst.counts_len, dst.unit_magnitude, dst.sub_bucket_count) != \
            (src.counts_len, src.unit_magnitude, src.sub_bucket_count):
        dst.add(src)
        return
    total = src.get_total_count()
    if total == 0:
        return
    low = src.get_counts_array_index(src.get_min_value())
    high = src.get_counts_array_index(src.get_max_value())
    part = slice(low, high + 1)
    counts_of(dst)[part] += counts_of(src)[part]
    dst.total_count += total
    dst.min_value = min(dst.min_value, src.min_value)
    dst.max_value = max(dst.max_value, src.max_value)


def counts_of(hist: HdrHistogram) -> np.ndarray:
    """The histogram's own counters as a writable int64 array (no copy)."""
    return np.frombuffer(hist.counts, dtype=np.int64, count=hist.counts_len)


def summarize(hist: HdrHistogram, percentiles: tuple[float, ...]) -> dict[str, float]:
    """{p: value} for each percentile, and mean, min, max, total: in microseconds, as hdrh's
    get_value_at_percentile, get_mean_value, get_min_value and get_max_value give them."""
    # only up to the highest occupied counter: the rest are zeros (7x less work at
    # millisecond latencies)
    used = hist.get_counts_array_index(hist.get_max_value()) + 1 \
        if hist.get_total_count() else 0
    counts = counts_of(hist)[:used]
    total = int(counts.sum())
    out: dict[str, float] = {"total": float(total)}
    if total == 0:
        for p in percentiles:
            out[str(p)] = math.nan
        out.update(mean=math.nan, min=math.nan, max=math.nan)
        return out
    lowest, highest, median = _bucket_values(hist.counts_len,
                                             hist.sub_bucket_half_count_magnitude,
                                             hist.unit_magnitude)
    cumulative = np.cumsum(counts)
    for p in percentiles:
        target = max(int(min(p, 100.0) * total / 100 + 0.5), 1)
        i = int(np.searchsorted(cumulative, target))
        out[str(p)] = float(highest[i] if p else lowest[i])
    nonzero = np.flatnonzero(counts)
    out["mean"] = float((counts[nonzero] * median[nonzero]).sum()) / total
    out["min"] = float(lowest[nonzero[0]]) if lowest[nonzero[0]] else 0.0
    out["max"] = float(highest[nonzero[-1]])
    return out


_EXTERNAL = struct.Struct(">II")            # hdrh V2: cookie, compressed length
_PAYLOAD = struct.Struct(">IIIIQQ")          # cookie, length, offset, digits, low, high
V2_COMPRESSION, V2_ENCODING = 0x1C849304, 0x1C849303   # hdrh's cookie bases


def read_wire(wire: bytes | str) -> tuple[tuple[int, int, int], bytes]:
    """One hdrh V2 wire histogram opened as hdrh's decoder opens it -- base64, the outer
    cookie and length, zlib, the payload cookie and size -- without its ctypes objects
    (which cost ~14 us of the ~21 us a cell took at the coordinator). Returns the layout
    (significant figures, lowest, highest) and the decompressed payload for the C
    decoder; raises ValueError or zlib.error where hdrh raises."""
    raw = base64.b64decode(wire)
    if len(raw) < _EXTERNAL.size:
        raise ValueError("hdr wire: too short")
    cookie, length = _EXTERNAL.unpack_from(raw)
    if cookie & ~0xF0 != V2_COMPRESSION or length != len(raw) - _EXTERNAL.size:
        raise ValueError("hdr wire: not an hdrh V2 compressed histogram")
    data = zlib.decompress(raw[_EXTERNAL.size:])
    if not payload_header_size <= len(data) <= payload_header_size + MAX_COUNTS_SIZE:
        raise ValueError("hdr wire: payload size out of range")
    cookie, _, _, digits, low, high = _PAYLOAD.unpack_from(data)
    if cookie & ~0xF0 != V2_ENCODING:
        raise ValueError("hdr wire: not an hdrh V2 payload")
    return (digits, low, high), data


# The cell wire between our own processes (load process -> worker -> coordinator): the
# histogram's occupied counters as two little-endian arrays, no base64, no zlib -- so the
# coordinator reads a second's cells of one name, from every worker, in one batch: their
# bytes joined, one frombuffer and one bincount (~9 us a cell against ~30 us for hdrh's V2
# wire, each opened alone: base64, zlib, varints). hdrh's wire is still read everywhere
# (files, journals of earlier versions). NUL first: never confused with base64 text.
SPARSE_MAGIC = b"\x00LH1"
_SPARSE = struct.Struct("<4sBBBxQQI")   # magic, digits, index width, count width, low, high, n
_COUNT_MAX = 1 << 62                     # a counter beyond it would wrap int64 sums


def encode_sparse(hist: HdrHistogram) -> bytes:
    """The histogram's non-zero counters: indices (2 bytes; 4 for a wider layout) and
    counts (2, 4 or 8 bytes, as wide as the largest needs)."""
    counts = counts_of(hist)
    index = np.flatnonzero(counts)
    values = counts[index]
    top = int(values.max()) if len(values) else 0
    iw = 2 if hist.counts_len <= 1 << 16 else 4
    cw = 2 if top < 1 << 16 else 4 if top < 1 << 32 else 8
    return (_SPARSE.pack(SPARSE_MAGIC, hist.significant_figures, iw, cw,
                         hist.lowest_trackable_value, hist.highest_trackable_value, len(index))
            + index.astype(f"<u{iw}").tobytes() + values.astype(f"<u{cw}").tobytes())


class WireSum:
    """The sum of many wire histograms of one layout, without making an HdrHistogram of
    each: the coordinator merges every worker's cell of every name each second, and
    building a histogram object (a zeroed 188 KB counts array and ~20 fields) and adding
    it cost ~70 us a cell.

    Two steps, so a caller can take a cell all or nothing: `open` checks one wire's
    framing and layout (ours: header and lengths; hdrh's: its cookies, lengths and zlib,
    as hdrh checks them) and `take` checks the counters of the opened wires (indices
    inside the layout, counts in range; hdrh's decoded by its own C decoder) and adds
    them -- all, or none and ValueError. `histogram()` gives the HdrHistogram that
    decoding and adding each wire would have given (tests hold them equal)."""

    def __init__(self, template: HdrHistogram) -> None:
        self.template = template
        self.layout = (template.significant_figures, template.lowest_trackable_value,
                       template.highest_trackable_value)
        self.counts = np.zeros(template.counts_len, dtype=np.int64)
        self._scratch: np.ndarray | None = None   # hdrh's decoder writes here first
        self.low = -1    # lowest and highest non-zero index so far, -1: none
        self.high = -1

    def open(self, wire: bytes) -> tuple[Any, ...]:
        """One wire's framing checked; what `take` reads. Raises ValueError (zlib.error
        for a corrupt hdrh payload)."""
        if wire[:4] == SPARSE_MAGIC:
            if len(wire) < _SPARSE.size:
                raise ValueError("cell wire: too short")
            _, digits, iw, cw, low, high, n = _SPARSE.unpack_from(wire)
            if iw not in (2, 4) or cw not in (2, 4, 8):
                raise ValueError("cell wire: bad header")
            if n > len(self.counts) or len(wire) != _SPARSE.size + n * (iw + cw):
                raise ValueError("cell wire: length does not match its header")
            if (digits, low, high) != self.layout:
                raise ValueError("a histogram of another layout")
            cut = _SPARSE.size + n * iw
            return iw, cw, wire[_SPARSE.size:cut], wire[cut:]
        layout, data = read_wire(wire)
        if layout != self.layout:
            raise ValueError("a histogram of another layout")
        return (data,)

    def take(self, opened: list[tuple[Any, ...]]) -> None:
        """Add opened wires: all of them, or (ValueError) none."""
        if not opened:
            return
        size = len(self.counts)
        groups: dict[tuple[int, int], tuple[list[bytes], list[bytes]]] = {}
        parts: list[tuple[np.ndarray, np.ndarray]] = []   # (index, counts) to add
        decoded: np.ndarray | None = None   # hdrh wires' counts, added once all are read
        for item in opened:
            if len(item) == 1:   # hdrh: its C decoder, into a scratch array
                if decoded is None:
                    decoded = np.zeros(size, dtype=np.int64)
                    if self._scratch is None:
                        self._scratch = np.zeros(size, dtype=np.int64)
                scratch = self._scratch
                try:
                    found = decode_payload(item[0], payload_header_size,
                                           scratch.ctypes.data, size, 8)
                except Exception:
                    scratch[:] = 0   # it may have written part of the counts
                    raise
                if found["total"] > 0 and found["max_nonzero_index"] >= 0:
                    part = slice(found["min_nonzero_index"], found["max_nonzero_index"] + 1)
                    decoded[part] += scratch[part]
                    scratch[part] = 0
                continue
            iw, cw, index, values = item
            group = groups.setdefault((iw, cw), ([], []))
            group[0].append(index)
            group[1].append(values)
        for (iw, cw), (index_parts, value_parts) in groups.items():
            index = np.frombuffer(b"".join(index_parts), f"<u{iw}")
            values = np.frombuffer(b"".join(value_parts), f"<u{cw}")
            if len(index) and int(index.max()) >= size:
                raise ValueError("cell wire: a counter outside the layout")
            if cw == 8 and len(values) and int(values.max()) > _COUNT_MAX:
                raise ValueError("cell wire: a counter out of range")
            parts.append((index, values))
        if decoded is not None:
            self.counts += decoded
        for index, values in parts:
            if not len(index):
                continue
            if len(index) > 4096 and values.dtype.itemsize < 8:
                # many cells: one pass over the layout (2- and 4-byte counts summed in
                # float64 are exact far past any second's count)
                summed = np.bincount(index, weights=values, minlength=size)
                self.counts += summed.astype(np.int64)
            else:   # a few cells: only their counters
                np.add.at(self.counts, index.astype(np.intp), values.astype(np.int64))
        nonzero = np.flatnonzero(self.counts)
        if len(nonzero):
            self.low, self.high = int(nonzero[0]), int(nonzero[-1])

    def add(self, wire: bytes) -> None:
        """Add one wire; raises on one that does not decode or has another layout,
        leaving the sum as it was."""
        self.take([self.open(wire)])

    def histogram(self) -> HdrHistogram:
        t = self.template
        hist = HdrHistogram(t.lowest_trackable_value, t.highest_trackable_value,
                            t.significant_figures)
        if self.high >= 0:
            ctypes.memmove(ctypes.addressof(hist.counts), self.counts.ctypes.data,
                           self.counts.nbytes)
            hist.set_internal_tacking_values(self.low, self.high, int(self.counts.sum()))
        return hist


def cumulative_at(hist: HdrHistogram, bounds_us: tuple[int, ...]) -> tuple[list[int], float]:
    """How many values are at or below each bound (a Prometheus histogram's buckets, to the
    histogram's precision: a bound falls inside one HDR bucket, counted whole), and the sum
    of all values in microseconds, as hdrh's mean times the count."""
    total = hist.get_total_count()
    if total == 0:
        return [0] * len(bounds_us), 0.0
    used = hist.get_counts_array_index(hist.get_max_value()) + 1
    counts = counts_of(hist)[:used]
    cumulative = np.cumsum(counts)
    below = [int(cumulative[min(hist.get_counts_array_index(b), used - 1)]) for b in bounds_us]
    median = _bucket_values(hist.counts_len, hist.sub_bucket_half_count_magnitude,
                            hist.unit_magnitude)[2][:used]
    nonzero = np.flatnonzero(counts)
    return below, float((counts[nonzero] * median[nonzero]).sum())
