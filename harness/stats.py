"""HDR histograms: record in batches, snapshot per interval, merge exactly.

The hot path only appends a tuple to a list (about 50 ns); once per interval `drain`
groups the samples by interval and request name and records them into HdrHistograms in
bulk: values are first rounded to the histogram's own bucket (lossless at 3 significant
digits) and counted with numpy, so one `record_value` call covers many samples. A single
`record_value` costs about 1.6 us, a fifth of a core at 130k requests/s if done per request.

Latencies are in microseconds. Every request that ended (answered, failed or timed out)
goes into the latency histogram, so a timeout counts against p99 instead of hiding.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from harness.hdr import SPARSE_MAGIC, WireSum, add_into, encode_sparse, summarize

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour
DIGITS = 3
_SUB_BUCKET_BITS = 11  # 2048 sub-buckets: what 3 significant digits needs


_last_collect = [0.0]


def collect_cycles(every_s: float = 1.0) -> None:
    """hdrh histograms hold reference cycles (histogram <-> encoder) around a 188 KB counts
    buffer: the cyclic collector, which counts objects not bytes, lets thousands of dead
    ones pile up (measured: ~600 MB per simulated hour in the coordinator). Collect them
    at most once a second wherever histograms are made and dropped by the thousand."""
    now = time.monotonic()
    if now - _last_collect[0] >= every_s:
        _last_collect[0] = now
        gc.collect()


FLOW_PREFIX = "flow:"   # a flow's own row (clients/flows.py): `flow:<name>`


def is_flow(name: str) -> bool:
    """A flow's own row: it sums its steps, which are rows of their own."""
    return name.startswith(FLOW_PREFIX)


def on_the_wire(cells: Mapping[str, IntervalStats]) -> IntervalStats:
    """The Aggregated row of one model's cells (a second's, or a whole run's): every
    request put on the wire, each flow's own row left out -- it sums its steps, never
    count them twice. The one definition the files, the dashboard, auto-stop and the
    capacity judge all read."""
    out = IntervalStats()
    for name, cell in cells.items():
        if not is_flow(name):
            out.add(cell)
    return out


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def record_batch(hist: HdrHistogram, values_us: Sequence[int] | np.ndarray) -> None:
    """Record many values with few calls; equal to recording each one (tested)."""
    if len(values_us) == 0:
        return
    arr = np.clip(np.asarray(values_us, dtype=np.int64), LOWEST_US, HIGHEST_US)
    bits = np.floor(np.log2(arr)).astype(np.int64) + 1
    shift = np.maximum(0, bits - _SUB_BUCKET_BITS)
    arr = (arr >> shift) << shift
    values, counts = np.unique(arr, return_counts=True)
    for value, count in zip(values.tolist(), counts.tolist(), strict=True):
        hist.record_value(value, count)


def encode(hist: HdrHistogram) -> bytes:
    """A cell's histogram as our processes send it to each other (hdr.encode_sparse)."""
    return encode_sparse(hist)


def decode(data: bytes) -> HdrHistogram:
    """Either wire: ours (sparse) or hdrh's V2 base64 (journals of earlier versions)."""
    if data[:4] == SPARSE_MAGIC:
        total = WireSum(_template())
        total.add(data)
        return total.histogram()
    return HdrHistogram.decode(data)


def merge(parts: Iterable[HdrHistogram]) -> HdrHistogram:
    out = new_histogram()
    for part in parts:
        add_into(out, part)
    return out


@dataclass
class IntervalStats:
    """One (request name, interval) cell: the histogram, error kinds, bytes received, and
    the HTTP statuses of the answers (every answer, failed or not; 0 = no answer).

    An unexpected status is kept as the error key `unexpected_status:503`, so errors.csv
    can say which status it was; `error_kind` splits such a key back."""

    hist: HdrHistogram = field(default_factory=new_histogram)
    errors: dict[str, int] = field(default_factory=dict)
    bytes_in: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    # TLS handshake durations (us) of the connections these requests opened; None when
    # none was made (plain HTTP, or kept-alive connections): made only when needed
    tls: HdrHistogram | None = None

    def to_wire(self) -> dict[str, Any]:
        n = self.hist.get_total_count()
        # the p99 from the counters with numpy (hdr.summarize): hdrh's own percentile walk
        # cost 1.1 ms a cell, and a load process ships every name's cell four times a
        # second -- with 40 names its loop stalled ~85 ms at a time and sent late
        out = {"hist": encode(self.hist), "errors": self.errors, "bytes": self.bytes_in,
               "n": n, "p99_us": int(summarize(self.hist, (99.0,))["99.0"]) if n else 0,
               "statuses": self.statuses}
        if self.tls is not None:
            out["tls"] = encode(self.tls)
        return out

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> IntervalStats:
        return cls(decode(data["hist"]), dict(data["errors"]), int(data["bytes"]),
                   {int(k): int(v) for k, v in data.get("statuses", {}).items()},
                   decode(data["tls"]) if "tls" in data else None)

    def tls_hist(self) -> HdrHistogram:
        if self.tls is None:
            self.tls = new_histogram()
        return self.tls

    def add(self, other: IntervalStats) -> None:
        add_into(self.hist, other.hist)
        if other.tls is not None:
            add_into(self.tls_hist(), other.tls)
        for kind, n in other.errors.items():
            self.errors[kind] = self.errors.get(kind, 0) + n
        for status, n in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + n
        self.bytes_in += other.bytes_in

    @property
    def ok(self) -> int:
        """Requests that succeeded: every request that ended, less the failures."""
        return self.hist.get_total_count() - sum(self.errors.values())


def sum_wires(wires: Iterable[dict[str, Any]]) -> tuple[IntervalStats, int]:
    """Cells as they came on the wire, merged into one, and how many did not decode (left
    out whole). Equal to adding up `IntervalStats.from_wire` of each (tested): the
    histograms are summed as counts in one batch (hdr.WireSum), one HdrHistogram made at
    the end. A cell whose counters are out of range (only a hostile peer's) sends the
    batch back to taking each cell alone, so exactly that cell is left out."""
    hist, tls = WireSum(_template()), WireSum(_template())
    opened: list[tuple[dict[str, int], dict[int, int], int, Any, Any]] = []
    bad = 0
    for wire in wires:
        try:
            errors = {str(k): int(v) for k, v in wire["errors"].items()}
            statuses = {int(k): int(v) for k, v in wire.get("statuses", {}).items()}
            opened.append((errors, statuses, int(wire["bytes"]), hist.open(wire["hist"]),
                           tls.open(wire["tls"]) if "tls" in wire else None))
        except Exception:  # hdrh and zlib raise several types on a corrupt histogram
            bad += 1
    try:
        hist.take([cell[3] for cell in opened])
        tls.take([cell[4] for cell in opened if cell[4] is not None])
        taken = opened
    except Exception:   # one cell at a time: all of a cell or none of it
        hist, tls, taken = WireSum(_template()), WireSum(_template()), []
        for cell in opened:
            try:   # checked apart first: a cell whose TLS histogram fails adds nothing
                WireSum(_template()).take([cell[3]])
                if cell[4] is not None:
                    WireSum(_template()).take([cell[4]])
            except Exception:
                bad += 1
                continue
            hist.take([cell[3]])
            if cell[4] is not None:
                tls.take([cell[4]])
            taken.append(cell)
    out = IntervalStats()
    for errors, statuses, nbytes, _, _ in taken:
        for kind, n in errors.items():
            out.errors[kind] = out.errors.get(kind, 0) + n
        for status, n in statuses.items():
            out.statuses[status] = out.statuses.get(status, 0) + n
        out.bytes_in += nbytes
    out.hist = hist.histogram()
    if tls.high >= 0:
        out.tls = tls.histogram()
    return out, bad


def forward_wires(pending: dict[tuple[int, str], list[dict[str, Any]]]
                  ) -> list[list[Any]]:
    """A worker's STATS cells from its load processes' cells as they came encoded: a
    cell that came once (one load process, the common case) goes on untouched -- never
    decoded and encoded again; several of one (interval, name) are merged encoded
    (`sum_wires`, exact) into one. A cell that does not decode is left out whole, as the
    coordinator would."""
    out: list[list[Any]] = []
    for (k, name), wires in pending.items():
        if len(wires) == 1:
            out.append([k, name, wires[0]])
            continue
        merged, _bad = sum_wires(wires)
        out.append([k, name, merged.to_wire()])
    return out


@cache
def _template() -> HdrHistogram:
    return new_histogram()


def error_kind(key: str) -> tuple[str, int]:
    """An error key -> (kind, status): `unexpected_status:503` -> (unexpected_status, 503);
    any other kind has status 0. A kind may carry a detail after a slash (`h2_reset/CANCEL`:
    the stream's reset code), which error_detail gives."""
    kind, _, status = key.partition(":")
    return kind.partition("/")[0], int(status) if status.isdigit() else 0


def error_detail(key: str) -> str:
    """What an error key says beyond its kind (an HTTP/2 error code), or ""."""
    return key.partition(":")[0].partition("/")[2]


def error_key(kind: str, status: int) -> str:
    return f"{kind}:{status}" if status else kind


def add_cell(cells: dict[Any, IntervalStats], key: Any, cell: IntervalStats) -> None:
    """Merge `cell` into cells[key] (exactly), or make it that entry."""
    if key in cells:
        cells[key].add(cell)
    else:
        cells[key] = cell


FIELDS = 5   # ints per sample in Recorder.samples (its layout, written by ok and fail)


class Recorder:
    """Collects samples of one process; safe to append from many threads (GIL-atomic ops).

    `t_measure_ns` is the perf_counter_ns at which measurement starts (after warm-up);
    samples finishing before it are dropped from the results (they are still counted in
    `sent`, which the client loops keep per user).
    """

    def __init__(self, names: Sequence[str], t_measure_ns: int, interval_s: float = 1.0,
                 users: int = 1, not_on_wire: frozenset[str] = frozenset()) -> None:
        self.names = list(names)
        self.t_measure_ns = t_measure_ns
        self.interval_ns = int(interval_s * 1e9)
        # one request's sample is FIELDS ints in a row of one flat list -- (t_done_ns,
        # name index, latency us, bytes received, HTTP status or 0) -- written only by
        # ok() and fail(). Measured per sample (CPython 3.11): `flat += row` 77 ns and
        # np.fromiter over the flat list 91 ns at the drain, against 89 + 222 ns for a
        # list of tuples, 380 ns for array('q').extend and 570 ns for five index stores
        # into a preallocated array; `+=` of a tuple is one C call, atomic under the GIL,
        # so the thread models' users may share it
        self.samples: list[int] = []
        self.errors: list[tuple[int, int, str]] = []    # (t_done_ns, name index, error key)
        # (t_done_ns, name index, TLS handshake us): one per TLS connection opened
        self.handshakes: list[tuple[int, int, int]] = []
        self.sent = [0] * users      # one slot per user: no two threads share a counter
        self.late = [0] * users      # open model: sends later than intended (> 1 ms)
        self.lagged = [0] * users    # ... of which more than 10 ms (pacing.LAGGED_NS)
        self.skipped = 0
        # failures of these kinds never put the request on the wire (a refused connect, a
        # failed TLS handshake): counted apart, taken off `sent` (the target never saw them)
        self.not_on_wire = not_on_wire
        self.unsent = 0
        self._unsent_lock = threading.Lock()

    def ok(self, name: int, t_done_ns: int, latency_ns: int, nbytes: int, status: int) -> None:
        samples = self.samples
        samples += (t_done_ns, name, latency_ns // 1000, nbytes, status)

    def fail(self, name: int, t_done_ns: int, latency_ns: int, kind: str,
             status: int = 0) -> None:
        """A failed request; `status` is the answer's when there was one (a status the spec
        does not accept), 0 when there was none (refused, reset, timeout...)."""
        samples = self.samples
        samples += (t_done_ns, name, latency_ns // 1000, 0, status)
        self.errors.append((t_done_ns, name, error_key(kind, status)))
        if kind in self.not_on_wire:
            with self._unsent_lock:
                self.unsent += 1

    def interval_of(self, t_ns: int) -> int:
        return (t_ns - self.t_measure_ns) // self.interval_ns

    def drain(self, whole_only: bool = False) -> dict[tuple[int, str], IntervalStats]:
        """Take the samples recorded so far, grouped by (interval, request name).

        `whole_only`: only intervals that have ended; the running one's samples stay for
        a later drain (a load process ships four times a second, and a cell per name
        each time cost it a histogram per name per tick: with 40 names its loop stalled).
        Otherwise everything: an interval still running comes out partial, the next drain
        carries the rest and the receiver adds them up (merging is exact), so nothing is
        held back or re-read. Warm-up samples are dropped here.
        """
        out: dict[tuple[int, str], IntervalStats] = {}
        samples = self.samples
        n = len(samples)  # rows added racing with us land after n, for the next drain
        if n:
            arr = np.fromiter(samples[:n], dtype=np.int64, count=n).reshape(-1, FIELDS)
            del samples[:n]
            second = (arr[:, 0] - self.t_measure_ns) // self.interval_ns
            if whole_only:
                running = self.interval_of(time.perf_counter_ns())
                later = second >= running
                if later.any():   # back for the next drain (one extend: GIL-atomic)
                    samples.extend(arr[later].ravel().tolist())
                    arr, second = arr[~later], second[~later]
            measured = second >= 0
            arr, second = arr[measured], second[measured]
        if n and len(arr):
            width = len(self.names)
            key = second * width + arr[:, 1]
            order = np.argsort(key, kind="stable")   # one sort, then a slice per cell
            arr, key = arr[order], key[order]
            cells, starts = np.unique(key, return_index=True)
            ends = [*starts[1:].tolist(), len(key)]
            for u, a, b in zip(cells.tolist(), starts.tolist(), ends, strict=True):
                rows = arr[a:b]
                cell = out.setdefault((u // width, self.names[u % width]), IntervalStats())
                record_batch(cell.hist, rows[:, 2])
                cell.bytes_in += int(rows[:, 3].sum())
                codes, counts = np.unique(rows[:, 4], return_counts=True)
                cell.statuses = {c: n for c, n in zip(codes.tolist(), counts.tolist(),
                                                      strict=True) if c}
        n = len(self.handshakes)
        if n:
            taken = self.handshakes[:n]
            del self.handshakes[:n]
            grouped: dict[tuple[int, str], list[int]] = {}
            for t, name, us in taken:
                interval = self.interval_of(t)
                if interval >= 0:
                    grouped.setdefault((interval, self.names[name]), []).append(us)
            for key, values in grouped.items():
                record_batch(out.setdefault(key, IntervalStats()).tls_hist(), values)
        n = len(self.errors)
        if n:
            batch = self.errors[:n]
            del self.errors[:n]
            for t, name, kind in batch:
                interval = self.interval_of(t)
                if interval >= 0:
                    cell = out.setdefault((interval, self.names[name]), IntervalStats())
                    cell.errors[kind] = cell.errors.get(kind, 0) + 1
        return out
