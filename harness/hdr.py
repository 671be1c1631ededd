"""Reading HDR histograms with numpy: percentiles, mean, min and max from the counts array
in one pass each, exactly as hdrh computes them (a test holds them equal on random data).

hdrh's own readers loop over ~23,000 buckets in Python: get_mean_value once per
timeseries row took 97% of a 50-name run's 232 s of result writing. Every histogram here
has the same layout (stats.new_histogram), so the value of each bucket is computed once.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
from hdrh.histogram import HdrHistogram


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


def counts_of(hist: HdrHistogram) -> np.ndarray:
    return np.frombuffer(hist.counts, dtype=np.uint64, count=hist.counts_len).astype(np.int64)


def summarize(hist: HdrHistogram, percentiles: tuple[float, ...]) -> dict[str, float]:
    """{p: value} for each percentile, and mean, min, max, total: in microseconds, as hdrh's
    get_value_at_percentile, get_mean_value, get_min_value and get_max_value give them."""
    counts = counts_of(hist)
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
