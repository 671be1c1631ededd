"""HDR recording in batches equals recording one by one; merges are exact."""

from __future__ import annotations

import random
import zlib

import pytest
from hdrh.codec import HdrCookieException, HdrLengthException
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.stats import (
    IntervalStats,
    Recorder,
    add_cell,
    error_kind,
    forward_wires,
    new_histogram,
    record_batch,
    sum_wires,
)


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
    rec.ok(0, 9_000_000_000, 1_000_000, 10, 200)   # warm-up: dropped
    rec.ok(0, 10_500_000_000, 2_000_000, 10, 200)  # interval 0
    rec.fail(1, 11_200_000_000, 3_000_000, "reset")  # interval 1
    first = rec.drain()
    assert set(first) == {(0, "a"), (1, "b")}
    assert first[(0, "a")].hist.get_total_count() == 1 and first[(0, "a")].bytes_in == 10
    assert first[(1, "b")].errors == {"reset": 1}
    assert first[(1, "b")].hist.get_total_count() == 1  # failures are in the latencies too
    rec.ok(1, 11_900_000_000, 4_000_000, 0, 204)   # interval 1 again: a partial remainder
    rest = rec.drain()
    assert set(rest) == {(1, "b")} and rest[(1, "b")].errors == {}
    assert rec.drain() == {}
    assert first[(0, "a")].statuses == {200: 1} and first[(1, "b")].statuses == {}
    assert rest[(1, "b")].statuses == {204: 1}


def test_unexpected_status_is_kept_with_its_status():
    """errors.csv says which status: the error key carries it, statuses count every answer."""
    rec = Recorder(["a"], t_measure_ns=0, users=1)
    rec.ok(0, 100, 1_000, 2, 200)
    rec.fail(0, 200, 1_000, "unexpected_status", 503)
    rec.fail(0, 300, 1_000, "unexpected_status", 503)
    rec.fail(0, 400, 1_000, "reset")
    cell = rec.drain()[(0, "a")]
    assert cell.errors == {"unexpected_status:503": 2, "reset": 1}
    assert cell.statuses == {200: 1, 503: 2} and cell.ok == 1
    assert error_kind("unexpected_status:503") == ("unexpected_status", 503)
    assert error_kind("reset") == ("reset", 0)
    again = IntervalStats.from_wire(cell.to_wire())
    assert again.statuses == cell.statuses and again.errors == cell.errors


def _corrupt(wire: bytes, how: int) -> bytes:
    """A cell wire broken as a hostile or broken peer might: hdrh's V2 text with its tail
    replaced (zlib fails), ours cut short, with a bad width, or an index past the layout."""
    if how == 0 or wire[:4] != b"\x00LH1":
        return (hdrh_wire(wire) if wire[:4] == b"\x00LH1" else wire)[:-6] + b"AAAAAA"
    if how == 1:
        return wire[:-3]
    if how == 2:
        return wire[:5] + b"\x03" + wire[6:]
    # our header: magic (4), digits, index width, count width, pad, lowest (8), highest
    # (8), n (4) -- 28 bytes, the indices next (this read n and wrote 4 bytes too far on,
    # into the first count when n was 2: a valid count, and no error to see)
    head, iw = 28, wire[5]
    n = int.from_bytes(wire[head - 4:head], "little")
    if not n:
        return wire[:-1]
    return wire[:head] + b"\xff" * iw + wire[head + iw:]   # the first index past the layout


def hdrh_wire(wire: bytes) -> bytes:
    return IntervalStats.from_wire({"hist": wire, "errors": {}, "bytes": 0}).hist.encode()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.integers(min_value=0, max_value=4_000_000_000), max_size=80),
                max_size=12),
       st.lists(st.integers(min_value=0, max_value=11), max_size=3),
       st.lists(st.integers(min_value=0, max_value=3), min_size=12, max_size=12),
       st.lists(st.booleans(), min_size=12, max_size=12))
def test_sum_wires_equals_decoding_and_adding_each(parts, corrupt_at, hows, as_hdrh):
    """The coordinator's batch (counts of every cell summed at once, one histogram at the
    end) gives the histogram, errors, statuses and bytes that decoding and adding each
    cell gave, whichever wire each came in (ours or hdrh's V2); a cell that does not
    decode is left out whole and counted, and the rest still count."""
    wires, expected, bad = [], IntervalStats(), 0
    for i, values in enumerate(parts):
        cell = IntervalStats(errors={"reset": i}, bytes_in=10 * i, statuses={200: len(values)})
        record_batch(cell.hist, values)
        if i % 4 == 1:
            record_batch(cell.tls_hist(), [100 * i + 1])
        wire = cell.to_wire()
        if as_hdrh[i]:
            wire["hist"] = hdrh_wire(wire["hist"])
        if i in corrupt_at:
            wire["hist"] = _corrupt(wire["hist"], hows[i])
            with pytest.raises((ValueError, zlib.error, HdrLengthException,
                                HdrCookieException)):
                IntervalStats.from_wire(wire)
            bad += 1
        else:
            expected.add(IntervalStats.from_wire(wire))
        wires.append(wire)
    merged, undecodable = sum_wires(wires)
    assert undecodable == bad
    assert counts(merged.hist) == counts(expected.hist)
    # min and max are read from the counts (harness.hdr.summarize); hdrh's own add keeps a
    # min of 0 after adding an empty histogram, a quirk not worth copying
    for attr in ("get_total_count", "get_max_value"):
        assert getattr(merged.hist, attr)() == getattr(expected.hist, attr)()
    assert merged.hist.encode() == expected.hist.encode()
    assert (merged.errors, merged.statuses, merged.bytes_in) == \
        ({k: v for k, v in expected.errors.items()}, expected.statuses, expected.bytes_in)


def test_sum_wires_refuses_another_layout():
    other = HdrHistogram(1, 1000, 2)
    other.record_value(5)
    wire = {"hist": other.encode(), "errors": {}, "bytes": 0}
    merged, bad = sum_wires([wire])
    assert bad == 1 and merged.hist.get_total_count() == 0


def test_merge_tls_adds_up_and_leaves_out_malformed_parts():
    from harness.transports.tls import merge_tls
    good = {"handshakes": 3, "resumed": 2, "versions": {"TLSv1.3": 3}, "ciphers": {"X": 3}}
    merged = merge_tls([good, good, {"handshakes": "many"}, "junk", {"versions": [1]}])
    assert merged == {"handshakes": 6, "resumed": 4, "versions": {"TLSv1.3": 6},
                      "ciphers": {"X": 6}}


@settings(max_examples=12, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3), st.integers(1, 10**7),
                          st.booleans()), max_size=300),
       st.lists(st.integers(0, 300), max_size=4))
def test_drained_cells_are_the_samples_recorded_whatever_the_drains(samples, cuts):
    """The Recorder's flat layout, one sort and a slice per cell: the cells drained (in any
    number of drains, merged) hold exactly each name's and second's samples."""
    names = ["a", "b", "c", "d"]
    rec = Recorder(names, t_measure_ns=1_000_000_000, users=1)   # second 0: warm-up
    expected: dict[tuple[int, str], list[int]] = {}
    got: dict[tuple[int, str], IntervalStats] = {}
    for i, (second, name, latency_us, failed) in enumerate(samples):
        t = second * 1_000_000_000 + i
        if failed:
            rec.fail(name, t, latency_us * 1000, "reset")
        else:
            rec.ok(name, t, latency_us * 1000, 3, 200)
        if second:   # warm-up answers are left out
            expected.setdefault((second - 1, names[name]), []).append(latency_us)
        if i in cuts:
            for key, cell in rec.drain().items():
                got.setdefault(key, IntervalStats()).add(cell)
    for key, cell in rec.drain().items():
        got.setdefault(key, IntervalStats()).add(cell)
    assert set(got) == set(expected)
    for key, values in expected.items():
        whole = IntervalStats()
        record_batch(whole.hist, values)
        assert counts(got[key].hist) == counts(whole.hist), key


def test_threads_recording_while_another_drains_lose_nothing():
    """The thread models' users share one Recorder: rows added while a drain runs land
    whole in a later drain, none lost, none torn."""
    import threading
    rec = Recorder(["a", "b"], t_measure_ns=0, users=4)
    per_thread, threads_n = 20_000, 4
    total = IntervalStats()
    done = threading.Event()

    def record(u: int) -> None:
        for i in range(per_thread):
            rec.ok(u % 2, 1_000 + i, 1_000 * (1 + u), 1, 200)

    def drain() -> None:
        while not done.is_set():
            for cell in rec.drain().values():
                total.add(cell)
    drainer = threading.Thread(target=drain)
    drainer.start()
    users = [threading.Thread(target=record, args=(u,)) for u in range(threads_n)]
    for t in users:
        t.start()
    for t in users:
        t.join()
    done.set()
    drainer.join()
    for cell in rec.drain().values():
        total.add(cell)
    assert total.hist.get_total_count() == per_thread * threads_n
    assert total.bytes_in == per_thread * threads_n


@settings(max_examples=10, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1), st.integers(0, 2),
                          st.lists(st.integers(1, 4_000_000), max_size=30)), max_size=7))
def test_forwarded_wires_equal_the_decoded_path_count_for_count(shipped):
    """A worker forwards its load processes' encoded cells (one came: untouched; several of
    one interval and name: merged encoded). What the coordinator decodes equals, count for
    count, what decoding, adding and encoding each cell again gave (the old path)."""
    pending: dict[tuple[int, str], list[dict]] = {}
    old: dict[tuple[int, str], IntervalStats] = {}
    for proc, (second, name_i, errs, values) in enumerate(shipped):
        cell = IntervalStats(errors={"reset": errs} if errs else {}, bytes_in=len(values),
                             statuses={200: len(values)} if values else {})
        record_batch(cell.hist, values)
        if proc % 3 == 0:
            record_batch(cell.tls_hist(), [100 + proc])
        wire = cell.to_wire()
        key = (second, "ab"[name_i])
        pending.setdefault(key, []).append(wire)
        add_cell(old, key, IntervalStats.from_wire(wire))
    forwarded = forward_wires(pending)
    assert sorted((k, n) for k, n, _ in forwarded) == sorted(old)
    for k, name, wire in forwarded:
        assert wire["n"] == old[(k, name)].hist.get_total_count()
        new, was = IntervalStats.from_wire(wire), IntervalStats.from_wire(old[(k, name)].to_wire())
        assert counts(new.hist) == counts(was.hist)
        assert (new.errors, new.statuses, new.bytes_in) == (was.errors, was.statuses,
                                                            was.bytes_in)
        assert (counts(new.tls) if new.tls else None) == (counts(was.tls) if was.tls else None)
        if len(pending[(k, name)]) == 1:
            assert wire is pending[(k, name)][0]   # forwarded untouched
