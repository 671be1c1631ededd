"""`harness compare A B [C ...]`: does a run differ from the baseline, and is it significant?

Inputs: our run directories, our summary.csv files, or Locust `*_stats.csv` files (with
their `*_stats_history.csv` when present). Rows match by model and request name; against
Locust, by name. Significance is benchstat's way: a Mann-Whitney U test on the per-second
samples (timeseries.csv, Locust's history), then Holm's step-down correction across every
row the comparison tested (75 rows at p < 0.05 would give about four changes by chance
alone; Holm keeps the chance of even one false change under 5%). A row is *changed* when
it survives Holm and moved by at least `--min-change` (5%, or 0.5 percentage points of
error rate): a significant 0.3% is real but not news. Gates (`--fail-on`) fire only on rows
that survive Holm, except where an input has no per-second samples, where the plain delta
decides. The output leads with one line: "no change beyond noise" or what changed.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu, rankdata

from harness.errors import CompareError
from harness.reports.capacities import capacity_lines
from harness.reports.markdown import table
from harness.reports.results import read_csv

ALPHA = 0.05
MIN_SAMPLES = 4
EXACT_SPLITS = 200_000  # up to 10+10 seconds (184,756 splits) tested exactly
MIN_CHANGE = 5.0          # % (rps, latencies) — and MIN_CHANGE / 10 pp for the error rate
CORRECTION = "Holm"
PARTIAL_SECOND = 0.5      # a second with under half the row's median requests is left out
# which way is worse, per metric: a regression is a change this way
WORSE = {"rps": -1, "p50": 1, "p95": 1, "p99": 1, "errors": 1}
METRICS = ("rps", "p50", "p95", "p99", "errors")   # errors = error rate
_GATE = re.compile(r"^\s*(rps|p50|p95|p99|errors)\s*:\s*([+-])\s*(\d+(?:\.\d+)?)\s*(%|pp)\s*$")


@dataclass
class Row:
    values: dict[str, float]
    samples: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class Source:
    label: str
    rows: dict[tuple[str | None, str], Row]
    locust: bool = False
    target: str | None = None   # meta.json's target_url, where there is one
    no_history: list[str] = field(default_factory=list)   # Locust names without history


def _target_of(summary_path: Path) -> str | None:
    """What a run ran against: its URL, or for the embedded mockserver (a new port each
    run) that and its [target.mock] settings."""
    try:
        meta = json.loads((summary_path.parent / "meta.json").read_text())
        if meta.get("embedded_mockserver"):
            mock = (meta["scenario"].get("raw") or {}).get("target", {}).get("mock")
            return "the embedded mockserver" + (f" with {json.dumps(mock, sort_keys=True)}"
                                                if mock else "")
        return str(meta["target_url"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _ours(summary_path: Path, label: str) -> Source:
    try:
        summary = read_csv(summary_path, "summary")
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise CompareError(f"{summary_path}: cannot read as a summary.csv ({exc})") from None
    if summary.empty:
        raise CompareError(f"{summary_path}: has no rows")
    ts_path = summary_path.parent / "timeseries.csv"
    ts = read_csv(ts_path, "timeseries") if ts_path.exists() else None
    rows = {}
    for r in summary.itertuples():
        row = Row({"rps": r.rps, "p50": r.p50_ms, "p95": r.p95_ms, "p99": r.p99_ms,
                   "errors": r.error_rate})
        if ts is not None:
            sel = ts[(ts["model"] == r.model) & (ts["name"] == r.name) & (ts["requests"] > 0)]
            # a partial second (the run's last, a count bound's tail) holds a handful of
            # requests: its percentiles are not comparable with a full second's
            if len(sel):
                sel = sel[sel["requests"] >= PARTIAL_SECOND * sel["requests"].median()]
            row.samples = {"rps": sel["rps"].tolist(), "p50": sel["p50_ms"].tolist(),
                           "p95": sel["p95_ms"].tolist(), "p99": sel["p99_ms"].tolist(),
                           "errors": (sel["failures"] / sel["requests"]).tolist()}
        rows[(r.model, r.name)] = row
    return Source(label, rows, target=_target_of(summary_path))


def _locust(stats_path: Path) -> Source:
    try:
        stats = pd.read_csv(stats_path)
        for col in ("Name", "Request Count", "Failure Count", "Requests/s", "50%", "95%",
                    "99%"):
            if col not in stats.columns:
                raise ValueError(f"missing column {col!r}")
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise CompareError(f"{stats_path}: cannot read as a Locust stats file ({exc})") from None
    if stats.empty:
        raise CompareError(f"{stats_path}: has no rows")
    history_path = stats_path.with_name(stats_path.name.replace("_stats.csv",
                                                                "_stats_history.csv"))
    history = pd.read_csv(history_path) if history_path.exists() else None
    rows = {}
    no_history = []
    for _, r in stats.iterrows():
        name = str(r["Name"])
        count = _num(r["Request Count"])
        row = Row({"rps": _num(r["Requests/s"]), "p50": _num(r["50%"]), "p95": _num(r["95%"]),
                   "p99": _num(r["99%"]),
                   "errors": _num(r["Failure Count"]) / count if count else 0.0})
        if history is not None:
            sel = history[(history["Name"] == name) & (history["Total Request Count"] > 0)]
            if sel.empty and not (history["Name"] == name).any():
                no_history.append(name)
            sel = sel[sel["Requests/s"] > 0]
            rps = sel["Requests/s"].astype(float)
            row.samples = {
                "rps": rps.tolist(),
                "p50": pd.to_numeric(sel["50%"], errors="coerce").dropna().tolist(),
                "p95": pd.to_numeric(sel["95%"], errors="coerce").dropna().tolist(),
                "p99": pd.to_numeric(sel["99%"], errors="coerce").dropna().tolist(),
                "errors": (sel["Failures/s"].astype(float) / rps).tolist()}
        rows[(None, name)] = row
    return Source(str(stats_path), rows, locust=True, no_history=no_history)


def load_source(arg: str) -> Source:
    path = Path(arg)
    if path.is_dir():
        if not (path / "summary.csv").exists():
            raise CompareError(f"{path}: no summary.csv in this directory")
        return _ours(path / "summary.csv", str(path))
    if not path.exists():
        raise CompareError(f"{path}: no such file or directory")
    if path.name.endswith("_stats.csv"):
        return _locust(path)
    return _ours(path, str(path))


def _match(base: Source, new: Source) -> list[tuple[str, str, Row, Row]]:
    """(model label, name, base row, new row) for every row both sides have."""
    out = []
    if base.locust or new.locust:  # Locust has no model: match by request name
        for (bm, bname), brow in base.rows.items():
            for (nm, nname), nrow in new.rows.items():
                if bname == nname:
                    out.append((f"{bm or 'locust'} -> {nm or 'locust'}", bname, brow, nrow))
    else:
        for key, brow in base.rows.items():
            if key in new.rows:
                out.append((str(key[0]), key[1], brow, new.rows[key]))
    return out


def _unmatched(base: Source, new: Source) -> list[str]:
    """Rows only one side has, named as `model/name (only in LABEL)`: never dropped quietly."""
    if base.locust or new.locust:
        names = ({n for _, n in base.rows}, {n for _, n in new.rows})
        return [f"{n} (only in {src.label})" for src, mine, other in
                ((base, names[0], names[1]), (new, names[1], names[0]))
                for n in sorted(mine - other)]
    return [f"{m}/{n} (only in {src.label})" for src, other in ((base, new), (new, base))
            for (m, n) in src.rows if (m, n) not in other.rows]


def significance(a: list[float], b: list[float]) -> tuple[float | None, str]:
    a = [x for x in a if not math.isnan(x)]
    b = [x for x in b if not math.isnan(x)]
    n = f"n={len(a)}+{len(b)}"
    if len(a) < MIN_SAMPLES or len(b) < MIN_SAMPLES:
        return None, n
    if len(set(a) | set(b)) == 1:
        return 1.0, n
    if math.comb(len(a) + len(b), len(a)) <= EXACT_SPLITS:
        return exact_rank_sum_p(a, b), n
    return float(mannwhitneyu(a, b, alternative="two-sided").pvalue), n


def exact_rank_sum_p(a: list[float], b: list[float]) -> float:
    """Two-sided Mann-Whitney p-value with every split of the pooled samples enumerated:
    exact under ties, which per-second percentiles from histogram cells always have.
    scipy's 'auto' falls back to the normal approximation with ties (6x too cautious at 8
    seconds a side: enough for Holm to hide a 30% slower run), and its PermutationMethod
    gives this same number but re-ranks every split (0.2-0.7 s a row); ranking once and
    summing midranks over the splits in numpy takes milliseconds."""
    ranks = rankdata(a + b)
    splits = np.fromiter(itertools.chain.from_iterable(
        itertools.combinations(range(len(ranks)), len(a))), dtype=np.int32)
    sums = ranks[splits.reshape(-1, len(a))].sum(axis=1)
    observed = ranks[: len(a)].sum()
    # doubled one-sided, as scipy's two-sided tests: under ties the null is not symmetric
    below = np.mean(sums <= observed + 1e-9)
    above = np.mean(sums >= observed - 1e-9)
    return float(min(1.0, 2 * min(below, above)))


def compare_sources(base: Source, new: Source) -> list[dict[str, Any]]:
    pairs = _match(base, new)
    if not pairs:
        raise CompareError(f"{new.label}: no rows in common with {base.label} "
                           "(model and request names differ)")
    rows = []
    for model, name, brow, nrow in pairs:
        for metric in METRICS:
            old, now = brow.values[metric], nrow.values[metric]
            if metric == "errors":
                delta, unit = (now - old) * 100, "pp"
            else:
                delta = (now - old) / old * 100 if old else math.nan
                unit = "%"
            p, n = significance(brow.samples.get(metric, []), nrow.samples.get(metric, []))
            has_samples = bool(brow.samples) and bool(nrow.samples)
            rows.append({"model": model, "name": name, "metric": metric, "old": old,
                         "new": now, "delta": delta, "unit": unit, "p": p, "n": n,
                         "has_samples": has_samples,
                         "baseline": base.label, "candidate": new.label})
    return rows


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given): the i-th smallest of m is
    multiplied by m - i, kept monotone, capped at 1. Controls the family-wise error rate
    without assuming the tests are independent (rows of one run are not)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def correct(rows: list[dict[str, Any]], min_change: float = MIN_CHANGE) -> None:
    """Holm across every tested row; `significant` now means "survives Holm", `changed`
    also asks for at least `min_change` (errors: min_change / 10 pp)."""
    tested = [r for r in rows if r["p"] is not None]
    for r, adj in zip(tested, holm([r["p"] for r in tested]), strict=True):
        r["p_adj"] = adj
        r["significant"] = adj < ALPHA
    for r in rows:
        r.setdefault("p_adj", None)
        if r["p"] is None:
            r["significant"] = False
        floor = min_change / 10 if r["unit"] == "pp" else min_change
        moved = not math.isnan(r["delta"]) and abs(r["delta"]) >= floor
        r["changed"] = bool(moved and (r["significant"] or not r["has_samples"]))
        r["regression"] = bool(r["changed"] and r["delta"] * WORSE[r["metric"]] > 0)


def headline(rows: list[dict[str, Any]], tested_by: str) -> str:
    """The one line a person reads first."""
    changed = [r for r in rows if r["changed"]]
    if not changed:
        return f"no change beyond noise ({len(rows)} rows, {tested_by})"
    worse = [r for r in changed if r["regression"]]
    better = [r for r in changed if not r["regression"]]
    parts = []
    if worse:
        parts.append(f"{len(worse)} regression{'s' if len(worse) != 1 else ''}: "
                     + ", ".join(_short(r) for r in worse[:5])
                     + (f" and {len(worse) - 5} more" if len(worse) > 5 else ""))
    if better:
        parts.append(f"{len(better)} improvement{'s' if len(better) != 1 else ''}: "
                     + ", ".join(_short(r) for r in better[:5])
                     + (f" and {len(better) - 5} more" if len(better) > 5 else ""))
    return "; ".join(parts) + f" ({len(rows)} rows, {tested_by})"


def _short(r: dict[str, Any]) -> str:
    return f"{r['model']} {r['name']} {r['metric']} {r['delta']:+.1f}{r['unit']}"


def parse_gates(text: str) -> list[tuple[str, float, str]]:
    gates = []
    for part in [p for p in text.split(",") if p.strip()]:
        m = _GATE.match(part)
        if m is None:
            raise CompareError(f"--fail-on: {part.strip()!r}: expected METRIC:+N% or "
                               "errors:+Npp (metrics: rps p50 p95 p99 errors)")
        sign = 1 if m.group(2) == "+" else -1
        gates.append((m.group(1), sign * float(m.group(3)), m.group(4)))
    return gates


def crossed_gates(rows: list[dict[str, Any]], gates: list[tuple[str, float, str]]) -> list[str]:
    out = []
    for metric, bound, unit in gates:
        for r in rows:
            if r["metric"] != metric or math.isnan(r["delta"]):
                continue
            if unit != r["unit"]:
                continue
            if r["has_samples"] and not r["significant"]:
                continue  # not a real difference: no gate fires on noise
            if (bound >= 0 and r["delta"] > bound) or (bound < 0 and r["delta"] < bound):
                out.append(f"{r['model']} {r['name']} {metric} {r['delta']:+.2f}{unit} "
                           f"crosses {bound:+g}{unit} ({r['candidate']})")
    return out


def _mark(r: dict[str, Any]) -> str:
    if r["p"] is None:
        return f"~ ({r['n']}, too few samples)" if r["has_samples"] else "(no samples)"
    delta = f"{r['delta']:+.2f}{r['unit']}" if not math.isnan(r["delta"]) else "n/a"
    p = f"p={r['p']:.3f} holm={r['p_adj']:.3f} {r['n']}"
    if r.get("changed"):
        return f"{delta} ({p})"
    return f"~ {delta}, under the minimum change ({p})" if r["significant"] else f"~ ({p})"


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([{
        "model": r["model"], "name": r["name"], "metric": r["metric"],
        "old": round(r["old"], 3), "new": round(r["new"], 3),
        "delta": "n/a" if math.isnan(r["delta"]) else f"{r['delta']:+.2f}{r['unit']}",
        "p": "" if r["p"] is None else f"{r['p']:.4f}",
        "p_holm": "" if r.get("p_adj") is None else f"{r['p_adj']:.4f}",
        "verdict": _mark(r)} for r in rows])


def table_text(frame: pd.DataFrame, fmt: str) -> str:
    """A frame as a plain table, Markdown, or CSV."""
    if fmt == "csv":
        return frame.to_csv(index=False).rstrip("\n")
    if fmt == "markdown":
        return "\n".join(table([str(c) for c in frame.columns],
                               [list(row) for row in frame.itertuples(index=False)]))
    return frame.to_string(index=False)


def render(rows: list[dict[str, Any]], fmt: str, show_all: bool = True,
           lead: str | None = None, frame_of: Any = _frame) -> str:
    """json and csv: every row (for machines). table and markdown: the one-line answer
    first, then the rows that changed, then (show_all) every row."""
    if fmt == "json":
        return json.dumps(rows, indent=2, default=str)
    if fmt == "csv":
        return table_text(frame_of(rows), fmt)
    out = [f"**{lead}**" if fmt == "markdown" and lead else lead or ""]
    changed = [r for r in rows if r["changed"]]
    if changed:
        out += ["", "changed:", table_text(frame_of(changed), fmt)]
    if show_all:
        out += ["", "all rows:", table_text(frame_of(rows), fmt)]
    return "\n".join(out).strip("\n")


@dataclass
class Comparison:
    """What `harness compare` found: the rendered table, the gates crossed, and notes a
    reader must see (different targets, rows not compared, samples too few to judge)."""

    text: str
    crossed: list[str]
    notes: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    gates: list[tuple[str, float, str]] = field(default_factory=list)


def _notes(sources: list[Source]) -> list[str]:
    base, out = sources[0], []
    for new in sources[1:]:
        if base.target and new.target and base.target != new.target:
            out.append(f"warning: different targets: {base.label} ran against {base.target}, "
                       f"{new.label} against {new.target}")
        missing = _unmatched(base, new)
        if missing:
            out.append("not compared: " + ", ".join(missing))
    return out


def _too_few(rows: list[dict[str, Any]], gates: list[tuple[str, float, str]]) -> list[str]:
    """Gated rows whose per-second samples are too few for significance: no gate could
    ever fire there, so a --fail-on over them would pass whatever changed."""
    gated = {metric for metric, _, _ in gates}
    return sorted({f"{r['model']}/{r['name']} ({r['n']})" for r in rows
                   if r["metric"] in gated and r["has_samples"] and r["p"] is None})


def run_compare(inputs: list[str], fmt: str, fail_on: str, show_all: bool = False,
                min_change: float = MIN_CHANGE) -> Comparison:
    """Compare every input with the first; CompareError for an input or gate that is bad,
    or for gates that could not fire (too few samples)."""
    if len(inputs) < 2:
        raise CompareError("compare needs at least two inputs (the first is the baseline)")
    gates = parse_gates(fail_on)
    sources = [load_source(arg) for arg in inputs]
    rows = [r for new in sources[1:] for r in compare_sources(sources[0], new)]
    correct(rows, min_change)
    notes = _notes(sources)
    for src in sources:
        if src.no_history:
            # Locust writes one history row per second per request name only when asked
            why = (f"{src.label}: Locust wrote no per-second history for "
                   f"{', '.join(src.no_history[:5])}: run Locust with --csv-full-history "
                   "(without it, its _stats_history.csv holds the Aggregated row only)")
            if gates:
                raise CompareError(f"--fail-on: {why}")
            notes.append(f"note: {why}")
    few = _too_few(rows, gates or [(m, 0.0, "") for m in METRICS])
    if few and gates:
        raise CompareError(f"--fail-on: too few per-second samples for any gate to fire "
                           f"(needs {MIN_SAMPLES} a side): {', '.join(few)}; run each side "
                           f"for at least {MIN_SAMPLES} s")
    if few:
        notes.append(f"note: too few per-second samples to judge significance "
                     f"(needs {MIN_SAMPLES} a side): {', '.join(few)}")
    lead = headline(rows, f"Mann-Whitney per-second tests, {CORRECTION}-corrected at "
                          f"alpha {ALPHA}, changes under {min_change:g}% ignored")
    text = render(rows, fmt, show_all, lead)
    if fmt == "table" and (capacities := capacity_lines(inputs)):
        text = "\n".join(capacities) + "\n\n" + text
    return Comparison(text, crossed_gates(rows, gates), notes, rows, gates)
