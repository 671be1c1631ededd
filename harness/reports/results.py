"""Merged run data -> pandas frames -> results/<run-id>/ (CSV, JSON, histograms).

Column sets are a contract (README, "Result files"): reports and compare read them back.
"""

from __future__ import annotations

import base64
import json
import platform
import re
import socket
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
from hdrh.histogram import HdrHistogram

from harness.core.names import SATURATED_CPU, SATURATED_SHARE
from harness.core.outcome import ModelResult, RunOutcome
from harness.hdr import WireSum
from harness.reports.intervals import (
    AGGREGATED,
    ERRORS_COLUMNS,
    STATUSES_COLUMNS,
    TIMESERIES_COLUMNS,
    TLS_COLUMNS,
    measured_seconds,
    ms_row,
    tls_row,
)
from harness.scenario import Scenario
from harness.stats import IntervalStats, new_histogram, on_the_wire

SUMMARY_COLUMNS = ["model", "name", "requests", "failures", "error_rate", "rps", "ok_rps",
                   "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms",
                   "min_ms", "bytes_in", "duration_s", "cpu_pct", "rss_peak_mb", "sent", "late",
                   "skipped", *TLS_COLUMNS, "valid", "protocol"]
# A load process at >= SATURATED_CPU of a core in a second (clients/process.py) measures itself
# Columns added after the first release: files written before them still read.
_LATER = ("ok_rps", "status", *TLS_COLUMNS, "valid", "protocol", "detail")

_INT = ("requests", "failures", "bytes_in", "sent", "late", "skipped", "second", "count",
        "status", "tls_handshakes")
_STR = ("model", "name", "kind", "protocol", "detail")
_BOOL = ("valid",)


def _dtypes(columns: list[str]) -> dict[str, str]:
    return {c: "int64" if c in _INT else "str" if c in _STR else "bool" if c in _BOOL
            else "float64" for c in columns}


DTYPES = {"summary": _dtypes(SUMMARY_COLUMNS), "timeseries": _dtypes(TIMESERIES_COLUMNS),
          "errors": _dtypes(ERRORS_COLUMNS), "statuses": _dtypes(STATUSES_COLUMNS)}


def read_csv(path: Path, kind: str) -> pd.DataFrame:
    """Read one of our CSV files with its documented column types; ValueError if it is not
    one (missing columns)."""
    frame = pd.read_csv(path, dtype=DTYPES[kind])
    missing = [c for c in DTYPES[kind] if c not in frame.columns and c not in _LATER]
    if missing:
        raise ValueError(f"{path}: not a {kind}.csv (missing {', '.join(missing)})")
    return frame


@dataclass
class ModelTotals:
    sent: int
    not_sent: int          # refused connects and failed TLS handshakes: never on the wire
    late: int
    skipped: int
    cpu_s: float
    rss_peak: int
    measured_s: float
    saturated_s: int       # load-process seconds at >= SATURATED_CPU of a core ...
    sampled_s: int         # ... of this many measured load-process seconds
    saturated_by: dict[str, int]   # ... by signal: cpu (its own), starved (run-queue wait)

    @property
    def client_saturated(self) -> bool:
        """The client, not the target, set the pace for much of the run: its latencies
        hold its own queueing (Little's law), and its throughput is its own limit."""
        return self.sampled_s > 0 and self.saturated_s > SATURATED_SHARE * self.sampled_s


def protocol(result: ModelResult, scenario: Scenario) -> str:
    """What the model spoke, as its load processes said ("HTTP/2", "HTTP/1.1"); a model
    none of whose processes reported (lost) is named by what the scenario asked."""
    said = [t["protocol"] for t in result.totals.values() if t.get("protocol")]
    if said:
        return str(said[0])
    return "HTTP/2" if scenario.http == "2" else "HTTP/1.1"


def wire_meta(result: ModelResult) -> dict[str, int]:
    """HTTP/2's connections and streams opened and requests a GOAWAY made us send again,
    summed over the workers (the fast engine counts them; httpx does not say)."""
    out: dict[str, int] = {}
    for t in result.totals.values():
        for k, v in (t.get("h2") or {}).items():
            out[k] = out.get(k, 0) + int(v)
    return out


def tls_meta(result: ModelResult) -> dict[str, Any]:
    """What TLS negotiated for a model (versions and ciphers, by handshake count) and how
    often a session was resumed (the `resume` mode's reuse ratio)."""
    from harness.transports.tls import merge_tls
    reported = [t["tls"] for t in result.totals.values() if "tls" in t]
    tls = merge_tls(reported)
    tls["session_reuse_ratio"] = round(tls["resumed"] / tls["handshakes"], 4) \
        if tls["handshakes"] else None
    tls["measured"] = bool(reported)   # Locust's clients hide their handshakes
    return tls


def start_offsets(result: ModelResult) -> dict[str, float]:
    """Each worker's load start minus the coordinator's intended start, in ms, by worker
    index: on one host (one clock) this is the START delivery skew; across hosts it also
    holds the offset between the hosts' clocks."""
    return {str(idx): round(1000.0 * (float(t["started_wall"]) - result.started_wall), 3)
            for idx, t in sorted(result.totals.items()) if "started_wall" in t}


def model_totals(result: ModelResult, scenario: Scenario) -> ModelTotals:
    totals = list(result.totals.values())
    measured = measured_seconds(result, scenario)
    return ModelTotals(
        sent=result.sent(),
        not_sent=sum(int(t.get("not_sent", 0)) for t in totals),
        late=sum(int(t.get("late", 0)) for t in totals),
        skipped=sum(int(t.get("skipped", 0)) for t in totals),
        cpu_s=sum(float(t.get("cpu_s", 0.0)) for t in totals),
        rss_peak=sum(int(t.get("rss_peak", 0)) for t in totals),
        measured_s=measured,
        saturated_s=sum(int(t.get("saturated_s", 0)) for t in totals),
        sampled_s=sum(int(t.get("sampled_s", 0)) for t in totals),
        saturated_by=_summed(t.get("saturated_by") or {} for t in totals),
    )


def _summed(dicts: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[str(k)] = out.get(str(k), 0) + int(v)
    return out


SIGNALS = {"cpu": f"its load process used >= {SATURATED_CPU:.0%} of a core",
           "starved": "its load process wanted a core and waited for one (CPU plus "
                      f"run-queue wait >= {SATURATED_CPU:.0%} of a core: another job on its "
                      "host)"}


def saturation_text(label: str, saturated_s: int, sampled_s: int,
                    by: dict[str, int]) -> str:
    """The one sentence that says a model measured its own client, and which signal said
    so: printed after the run, in junit.xml and in report.html."""
    why = "; ".join(f"{SIGNALS.get(k, k)} in {n} s" for k, n in sorted(by.items())) or \
        SIGNALS["cpu"]
    return (f"{label} saturated its client in {saturated_s} of {sampled_s} measured seconds "
            f"({why}): its latencies include its own queueing and its requests/s is its "
            "own limit")


def summary_frame(outcome: RunOutcome, scenario: Scenario) -> pd.DataFrame:
    rows = []
    for result in outcome.models:
        totals = model_totals(result, scenario)
        per_name = result.by_name
        names = scenario.result_names
        everything = on_the_wire(per_name)
        model_cols = {
            "duration_s": round(totals.measured_s, 3),
            "cpu_pct": round(100.0 * totals.cpu_s / max(totals.measured_s + scenario.warmup_s,
                                                        1e-9), 1),
            "rss_peak_mb": round(totals.rss_peak / 2**20, 1),
            "sent": totals.sent, "late": totals.late, "skipped": totals.skipped,
            # a measurement of the target only when the generator was not its limit
            "valid": not totals.client_saturated,
            "protocol": protocol(result, scenario),
        }
        for name, cell in [*((n, per_name.get(n, IntervalStats())) for n in names),
                           (AGGREGATED, everything)]:
            requests = cell.hist.get_total_count()
            failures = sum(cell.errors.values())
            rows.append({
                "model": result.label, "name": name, "requests": requests,
                "failures": failures, "error_rate": failures / requests if requests else 0.0,
                "rps": requests / totals.measured_s, "ok_rps": cell.ok / totals.measured_s,
                **ms_row(cell, (50.0, 90.0, 95.0, 99.0, 99.9)),
                "bytes_in": cell.bytes_in, **model_cols, **tls_row(cell),
            })
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


SUMMARY_HISTOGRAMS = "summary-histograms.csv"


def read_histograms(path: Path, by: str = "name") -> dict[str, HdrHistogram]:
    """Merge a histograms/<model>.csv (or summary-histograms.csv, by="model") back into one
    exact histogram per request name (or model)."""
    frame = pd.read_csv(path, dtype={by: str})
    out: dict[str, HdrHistogram] = {}
    for name, group in frame.groupby(by):
        total = WireSum(new_histogram())
        for h in group["hist"]:
            total.add(base64.b64decode(h))
        out[str(name)] = total.histogram()
    return out


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("loadharness", "aiohttp", "uvloop", "httptools", "pyzmq", "pandas",
                 "hdrhistogram", "locust"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def new_run_dir(out: Path, name: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"
    base = out / f"{stamp}-{slug}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = Path(f"{base}-{n}")
    path.mkdir(parents=True)
    return path


def write_run(run_dir: Path, scenario: Scenario, outcome: RunOutcome, summary: pd.DataFrame,
              *, url: str, embedded: bool, mock_stats: dict[str, Any] | None,
              extra: dict[str, Any]) -> None:
    """Write summary.csv and meta.json once (with `extra`: verdict, thresholds...); the
    per-second files were written as each interval closed (reports/intervals.py)."""
    summary.to_csv(run_dir / "summary.csv", index=False)
    # the exact whole-run histogram of each model and name, as summary.csv read it: the
    # report's percentile chart reads these few rows, not every second's histograms
    # (an hour of 50 names is 180,000 of them: 17 s)
    pd.DataFrame([{"model": r.label, "name": name,
                   "hist": base64.b64encode(cell.hist.encode()).decode("ascii")}
                  for r in outcome.models for name, cell in sorted(r.by_name.items())],
                 columns=["model", "name", "hist"]).to_csv(run_dir / SUMMARY_HISTOGRAMS,
                                                           index=False)
    models_meta = {}
    for r in outcome.models:
        t = model_totals(r, scenario)
        models_meta[r.label] = {
            "requests_sent": t.sent, "not_sent": t.not_sent, "late": t.late,
            "skipped": t.skipped,
            "cpu_s": round(t.cpu_s, 3), "rss_peak_bytes": t.rss_peak,
            "measured_s": round(t.measured_s, 3), "aborted": r.aborted, "errors": r.errors,
            "started": r.started_wall, "ended": r.ended_wall,
            "workers_reported": sorted(r.totals),
            "workers_last_known": sorted(set(r.sent_seen) - set(r.totals)),
            "late_cells": r.late_cells,
            "start_offset_ms": start_offsets(r),
            "client_saturated": t.client_saturated,
            "client_saturated_s": t.saturated_s, "client_sampled_s": t.sampled_s,
            "client_saturated_by": t.saturated_by,
        }
        models_meta[r.label]["protocol"] = protocol(r, scenario)
        if wire := wire_meta(r):
            models_meta[r.label]["h2"] = wire
        if url.startswith("https://"):
            models_meta[r.label]["tls"] = tls_meta(r)
    meta = {
        **_base_meta(run_dir, scenario, url, embedded),
        "workers": [{"name": w.name, "index": w.index, "host": w.host,
                     "lost": not w.alive, "lost_at": w.lost_at, "lost_during": w.lost_during,
                     "gaps": [{"lost": a, "back": b} for a, b in w.gaps]}
                    for w in outcome.workers],
        "partial": outcome.partial,
        "interrupted": outcome.interrupted,
        "requests_sent": sum(m["requests_sent"] for m in models_meta.values()),
        "models": models_meta,
        "dropped_messages": outcome.dropped_messages,
        "refused_workers": outcome.refused_workers,
        "mockserver_stats": mock_stats,
        **extra,
    }
    _write_json(run_dir / "meta.json", meta)


def _base_meta(run_dir: Path, scenario: Scenario, url: str, embedded: bool
               ) -> dict[str, Any]:
    return {
        "run_id": run_dir.name,
        "scenario": {"name": scenario.name, "source": scenario.source, "raw": scenario.raw},
        "target_url": url,
        "embedded_mockserver": embedded,
        "versions": versions(),
        "host": {"name": socket.gethostname(), "platform": platform.platform(),
                 "python": sys.version.split()[0]},
    }


def write_meta(run_dir: Path, scenario: Scenario, *, url: str, embedded: bool,
               state: str, **extra: Any) -> None:
    """The first meta.json, at the start: what runs, against what, `state` (running); or
    the last of a run that never started (`failed`, with why and what was counted)."""
    _write_json(run_dir / "meta.json", {**_base_meta(run_dir, scenario, url, embedded),
                                        "state": state, **extra})


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Written beside and renamed over: a kill mid-write leaves the old file whole."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)
