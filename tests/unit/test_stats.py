"""HDR recording in batches equals recording one by one; merges are exact."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.stats import IntervalStats, Recorder, new_histogram, record_batch


def counts(hist) -> list[tuple[int, int]]:
    return [(v.value_iterated_to, v.count_at_value_iterated_to)
            for v in hist.get_recorded_iterator()]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=4_000_000_000), max_size=500))
def test_batch_equals_one_by_one(values):
    one, batch = new_histogram(), new_histogram()
    for v in values:
        one.record_value(min(max(v, 1), 3_600_000_000))
    record_batch(batch, values)
    assert counts(one) == counts(batch)
    assert one.get_total_count() == batch.get_total_count()
    if values:
        assert one.get_value_at_percentile(99) == batch.get_value_at_percentile(99)


def test_merge_through_the_wire_is_exact():
    rng = random.Random(5)
    parts = []
    whole = new_histogram()
    for _ in range(10):
        cell = IntervalStats()
        values = [int(rng.lognormvariate(8, 1)) + 1 for _ in range(1000)]
        record_batch(cell.hist, values)
        record_batch(whole, values)
        cell.errors = {"timeout": 2}
        parts.append(IntervalStats.from_wire(cell.to_wire()))
    merged = IntervalStats()
    for p in parts:
        merged.add(p)
    assert counts(merged.hist) == counts(whole)
    assert merged.errors == {"timeout": 20}


def test_recorder_drops_warmup_and_groups_by_interval():
    rec = Recorder(["a", "b"], t_measure_ns=10_000_000_000, users=2)
    rec.ok(0, 9_000_000_000, 1_000_000, 10)        # warm-up: dropped
    rec.ok(0, 10_500_000_000, 2_000_000, 10)       # interval 0
    rec.fail(1, 11_200_000_000, 3_000_000, "reset")  # interval 1
    first = rec.drain()
    assert set(first) == {(0, "a"), (1, "b")}
    assert first[(0, "a")].hist.get_total_count() == 1 and first[(0, "a")].bytes_in == 10
    assert first[(1, "b")].errors == {"reset": 1}
    assert first[(1, "b")].hist.get_total_count() == 1  # failures are in the latencies too
    rec.ok(1, 11_900_000_000, 4_000_000, 0)        # interval 1 again: a partial remainder
    rest = rec.drain()
    assert set(rest) == {(1, "b")} and rest[(1, "b")].errors == {}
    assert rec.drain() == {}
