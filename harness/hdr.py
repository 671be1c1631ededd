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
_LAYOUT, _DATA = 0, 1
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


class WireSum:
    """The sum of many hdrh V2 wire histograms of one layout, without making an
    HdrHistogram of each: the coordinator merges ~5,000 worker cells a second in a wide
    run, and building a histogram object (a zeroed 188 KB counts array and ~20 fields) and
    adding it cost ~70 us a cell, more than a core at that rate.

    Each wire is checked as hdrh checks it (header and payload cookies, lengths, zlib) and
    its layout against ours, then decoded by hdrh's C decoder into a scratch array whose
    touched range is added and cleared. `histogram()` gives the HdrHistogram that decoding
    and adding each wire would have given (a test holds them equal)."""

    def __init__(self, template: HdrHistogram) -> None:
        self.template = template
        self.counts = np.zeros(template.counts_len, dtype=np.int64)
        self._scratch = np.zeros(template.counts_len, dtype=np.int64)
        self._scratch_address = self._scratch.ctypes.data
        self.low = -1    # lowest and highest non-zero index so far, -1: none
        self.high = -1

    def add(self, wire: bytes) -> None:
        """Add one encoded histogram; raises (as hdrh does) on one that does not decode or
        has another layout, leaving the sum as it was."""
        data, t = read_wire(wire), self.template
        if data[_LAYOUT] != (t.significant_figures, t.lowest_trackable_value,
                             t.highest_trackable_value):
            raise ValueError("a histogram of another layout")
        try:
            found = decode_payload(data[_DATA], payload_header_size,
                                   self._scratch_address, t.counts_len, 8)
        except Exception:
            self._scratch[:] = 0   # it may have written part of the counts before failing
            raise
        low, high = found["min_nonzero_index"], found["max_nonzero_index"]
        if found["total"] <= 0 or high < 0:
            return
        part = slice(low, high + 1)
        self.counts[part] += self._scratch[part]
        self._scratch[part] = 0
        self.low = low if self.low < 0 else min(self.low, low)
        self.high = max(self.high, high)

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
