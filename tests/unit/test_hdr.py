"""Our numpy readers of HDR histograms equal hdrh's own, on random data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.hdr import add_into, counts_of, cumulative_at, summarize
from harness.stats import new_histogram, record_batch

PCTS = (0.0, 50.0, 90.0, 95.0, 99.0, 99.9, 99.99, 100.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 3_600_000_000), min_size=1, max_size=300),
       st.integers(0, 2**32 - 1))
def test_percentiles_mean_min_max_equal_hdrh(values, seed):
    hist = new_histogram()
    rng = np.random.default_rng(seed)
    record_batch(hist, np.concatenate([values, rng.lognormal(8, 2, 500).astype(int) + 1]))
    got = summarize(hist, PCTS)
    for p in PCTS:
        assert got[str(p)] == hist.get_value_at_percentile(p), p
    assert got["mean"] == pytest.approx(hist.get_mean_value(), rel=1e-12)
    assert got["min"] == hist.get_min_value() and got["max"] == hist.get_max_value()
    assert got["total"] == hist.get_total_count()


def test_empty_histogram_is_nan():
    got = summarize(new_histogram(), (50.0,))
    assert got["total"] == 0 and np.isnan(got["50.0"]) and np.isnan(got["mean"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 4_000_000_000), max_size=100), max_size=8))
def test_add_into_equals_hdrh_add(parts):
    """Adding over the occupied range only gives hdrh's own sum, counter for counter."""
    ours, theirs = new_histogram(), new_histogram()
    for values in parts:
        part = new_histogram()
        record_batch(part, values)
        add_into(ours, part)
        theirs.add(part)
    assert (counts_of(ours) == counts_of(theirs)).all()
    assert ours.get_total_count() == theirs.get_total_count()
    assert ours.get_max_value() == theirs.get_max_value()
    assert ours.encode() == theirs.encode()
    if ours.get_total_count():
        assert summarize(ours, PCTS) == summarize(theirs, PCTS)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 100_000_000), max_size=300),
       st.lists(st.integers(1, 60_000_000), min_size=1, max_size=14, unique=True))
def test_cumulative_at_counts_values_in_buckets_at_or_below(values, bounds):
    """/metrics' buckets: the values whose HDR bucket is at or below the bound's bucket
    (within the histogram's 3 digits of the bound), and the sum as hdrh's mean x count."""
    hist = new_histogram()
    record_batch(hist, values)
    bounds = tuple(sorted(bounds))
    below, total_us = cumulative_at(hist, bounds)
    index = hist.get_counts_array_index
    assert below == [sum(1 for v in values if index(v) <= index(b)) for b in bounds]
    for b, n in zip(bounds, below, strict=True):
        assert sum(v <= b for v in values) <= n <= sum(v <= b * 1.001 + 1 for v in values)
    mean = hist.get_mean_value() if values else 0.0
    assert total_us == pytest.approx(mean * len(values), rel=1e-9)
