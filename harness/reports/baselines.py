"""Baselines: runs kept under `baselines/NAME/<run-id>/`, and a run compared against them.

Two runs of the same code on a shared machine differ by 7-20% (docs/benchmarks.md), while
the per-second test of `harness compare A B` only sees the noise inside each run. A
baseline of several runs measures the noise *between* runs, and a row changes only when
the new run lies outside the baseline runs' spread (a 95% prediction interval for one
more run: mean +- t * sd * sqrt(1 + 1/k)), moved by at least the minimum change, *and* the
per-second test (the new run's seconds against every baseline second, Holm-corrected)
agrees. Each change gets a 95% bootstrap interval that resamples runs, then seconds.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from harness.core.names import AGGREGATED
from harness.errors import BaselineError, CompareError
from harness.reports.compare import (
    ALPHA,
    CORRECTION,
    METRICS,
    MIN_CHANGE,
    Comparison,
    Source,
    correct,
    crossed_gates,
    headline,
    load_source,
    parse_gates,
    render,
    significance,
)

MIN_RUNS = 3                  # below this the spread between runs is not known
KEPT = ("summary.csv", "summary-histograms.csv", "timeseries.csv", "meta.json")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
BOOTSTRAP = 2000


def baseline_dir(root: Path, name: str) -> Path:
    """`root/name`, the name checked: a name is not a path."""
    if not _NAME.fullmatch(name) or name in (".", ".."):
        shown = repr(name)
        shown = shown if len(shown) <= 60 else shown[:56] + "...'"
        raise BaselineError(f"baseline name {shown}: expected letters, digits, '_', '.' "
                            "or '-' (at most 64, no path)")
    return root / name


def _identity(run_dir: Path) -> tuple[str, str]:
    """(scenario, target) of a finished run, as text to compare: the runs of one baseline
    must measure the same thing."""
    meta_path = run_dir / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise BaselineError(f"{run_dir}: not a run directory (meta.json: {exc})") from None
    if not isinstance(meta, dict) or meta.get("state") != "done":
        raise BaselineError(f"{run_dir}: not a finished run (meta.json state is not done)")
    if not (run_dir / "summary.csv").is_file():
        raise BaselineError(f"{run_dir}: no summary.csv")
    scenario = meta.get("scenario") or {}
    raw = json.dumps(scenario.get("raw"), sort_keys=True, default=str)
    target = load_source(str(run_dir)).target or str(meta.get("target_url"))
    return raw, target


def stored_runs(root: Path, name: str) -> list[Path]:
    path = baseline_dir(root, name)
    if not path.is_dir():
        raise BaselineError(f"baseline {name!r}: not found under {root} (make it with "
                            f"harness baseline add {name} RUN_DIR...)")
    return sorted(p for p in path.iterdir() if p.is_dir() and (p / "summary.csv").is_file())


def add(root: Path, name: str, run_dirs: list[str]) -> list[Path]:
    """Copy the files compare needs from each run into the baseline; all or nothing: a run
    of another scenario or target (than the baseline's or the others') refuses them all."""
    base = baseline_dir(root, name)
    existing = stored_runs(root, name) if base.is_dir() else []
    want = _identity(existing[0]) if existing else None
    kept = {(p / "meta.json").read_bytes() for p in existing if (p / "meta.json").is_file()}
    taken = {p.name for p in existing}
    places = []
    for arg in run_dirs:
        run_dir = Path(arg)
        ident = _identity(run_dir)
        if want is None:
            want = ident
        elif ident[0] != want[0]:
            raise BaselineError(f"{run_dir}: ran another scenario than baseline {name!r}")
        elif ident[1] != want[1]:
            raise BaselineError(f"{run_dir}: ran against {ident[1]}, baseline {name!r} "
                                f"against {want[1]}")
        meta = (run_dir / "meta.json").read_bytes()
        if meta in kept:
            raise BaselineError(f"{run_dir}: already in baseline {name!r}")
        kept.add(meta)
        # two runs started in one second under different --out share a run id
        place, n = run_dir.resolve().name, 1
        while place in taken:
            n += 1
            place = f"{run_dir.resolve().name}-{n}"
        taken.add(place)
        places.append(place)
    base.mkdir(parents=True, exist_ok=True)
    added = []
    for arg, place in zip(run_dirs, places, strict=True):
        run_dir = Path(arg).resolve()
        tmp = base / f".{place}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for fname in KEPT:
            if (run_dir / fname).is_file():
                shutil.copy2(run_dir / fname, tmp / fname)
        if (run_dir / "histograms").is_dir():
            shutil.copytree(run_dir / "histograms", tmp / "histograms")
        tmp.replace(base / place)
        added.append(base / place)
    return added


@dataclass
class Spread:
    """One metric of one row over the stored runs."""

    values: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def sd(self) -> float:
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else math.nan

    def interval(self) -> tuple[float, float]:
        """95% prediction interval for one more run's value."""
        k = len(self.values)
        if k < 2:
            return (math.nan, math.nan)
        half = float(sps.t.ppf(1 - ALPHA / 2, k - 1)) * self.sd * math.sqrt(1 + 1 / k)
        return self.mean - half, self.mean + half


def _sources(runs: list[Path]) -> list[Source]:
    return [load_source(str(p)) for p in runs]


def noise_table(root: Path, name: str) -> pd.DataFrame:
    """Per model, request name and metric: mean, sd and coefficient of variation over the
    stored runs (what `baseline show` prints)."""
    sources = _sources(stored_runs(root, name))
    rows = []
    for key in sources[0].rows if sources else []:
        for metric in METRICS:
            values = [s.rows[key].values[metric] for s in sources if key in s.rows]
            spread = Spread([v for v in values if not math.isnan(v)])
            if not spread.values:
                continue
            cv = spread.sd / spread.mean * 100 if spread.mean else math.nan
            rows.append({"model": key[0], "name": key[1], "metric": metric, "runs":
                         len(spread.values), "mean": round(spread.mean, 4),
                         "sd": round(spread.sd, 4),
                         "cv_pct": "" if math.isnan(cv) else round(cv, 2)})
    return pd.DataFrame(rows)


def show(root: Path, name: str) -> str:
    runs = stored_runs(root, name)
    lines = [f"baseline {name}: {len(runs)} run{'s' if len(runs) != 1 else ''}"
             + ("" if len(runs) >= MIN_RUNS else
                f" (fewer than {MIN_RUNS}: its noise is not known, gates are refused)")]
    for p in runs:
        try:
            summary = pd.read_csv(p / "summary.csv")
            agg = summary[summary["name"] == AGGREGATED]
            what = ", ".join(f"{r.model} {int(r.requests)} requests {r.rps:.0f} req/s"
                             for r in agg.itertuples())
        except (OSError, ValueError, AttributeError):
            what = "(summary unreadable)"
        lines.append(f"  {p.name}: {what}")
    table = noise_table(root, name)
    if not table.empty:
        lines += ["noise between runs (sd, and cv = sd / mean):", table.to_string(index=False)]
    return "\n".join(lines)


def _bootstrap(base_runs: list[list[float]], new: list[float], errors: bool,
               rng: np.random.Generator) -> tuple[float, float]:
    """95% interval of the change (percent, or pp for the error rate): resample the stored
    runs, then each run's seconds, and the new run's seconds."""
    runs = [np.asarray(r, dtype=float) for r in base_runs if len(r)]
    fresh = np.asarray(new, dtype=float)
    if len(runs) < 2 or len(fresh) < 2:
        return (math.nan, math.nan)
    per_run = np.column_stack([r[rng.integers(0, len(r), (BOOTSTRAP, len(r)))].mean(axis=1)
                               for r in runs])
    pick = rng.integers(0, len(runs), (BOOTSTRAP, len(runs)))
    base = np.take_along_axis(per_run, pick, axis=1).mean(axis=1)
    now = fresh[rng.integers(0, len(fresh), (BOOTSTRAP, len(fresh)))].mean(axis=1)
    if errors:
        delta = (now - base) * 100
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            delta = (now / base - 1) * 100
        delta = delta[np.isfinite(delta)]
        if not len(delta):
            return (math.nan, math.nan)
    lo, hi = np.percentile(delta, [2.5, 97.5])
    return float(lo), float(hi)


def compare_baseline(root: Path, name: str, run_dir: str, fmt: str, fail_on: str,
                     show_all: bool = False, min_change: float = MIN_CHANGE) -> Comparison:
    """A run against every stored run of a baseline, under the noise model above."""
    gates = parse_gates(fail_on)
    runs = stored_runs(root, name)
    if not runs:
        raise BaselineError(f"baseline {name!r}: holds no runs")
    new = load_source(run_dir)
    olds = _sources(runs)
    notes = []
    if len(olds) < MIN_RUNS:
        if gates:
            raise CompareError(f"--fail-on: baseline {name!r} has {len(olds)} run(s); at "
                               f"least {MIN_RUNS} are needed to know the noise between runs")
        notes.append(f"note: baseline {name!r} has {len(olds)} run(s): fewer than "
                     f"{MIN_RUNS}, so the noise between runs is not known and nothing is "
                     "called a change")
    if olds[0].target and new.target and olds[0].target != new.target:
        notes.append(f"warning: different targets: baseline {name!r} ran against "
                     f"{olds[0].target}, {new.label} against {new.target}")
    rng = np.random.default_rng(0)
    rows = []
    for key, nrow in new.rows.items():
        have = [s.rows[key] for s in olds if key in s.rows]
        if not have:
            notes.append(f"not compared: {key[0]}/{key[1]} (not in baseline {name!r})")
            continue
        for metric in METRICS:
            spread = Spread([r.values[metric] for r in have])
            now = nrow.values[metric]
            lo, hi = spread.interval()
            errors = metric == "errors"
            old = spread.mean
            delta = (now - old) * 100 if errors else \
                ((now - old) / old * 100 if old else math.nan)
            pooled = [x for r in have for x in r.samples.get(metric, [])]
            fresh = nrow.samples.get(metric, [])
            p, n = significance(pooled, fresh)
            ci = _bootstrap([r.samples.get(metric, []) for r in have], fresh, errors, rng)
            outside = len(spread.values) >= MIN_RUNS and not (lo <= now <= hi)
            rows.append({"model": str(key[0]), "name": key[1], "metric": metric,
                         "old": old, "new": now, "delta": delta,
                         "unit": "pp" if errors else "%", "p": p, "n": n,
                         "significant": False, "has_samples": bool(pooled) and bool(fresh),
                         "spread_lo": lo, "spread_hi": hi, "outside": outside,
                         "ci_lo": ci[0], "ci_hi": ci[1], "runs": len(spread.values),
                         "baseline": name, "candidate": new.label})
    correct(rows, min_change)
    for r in rows:   # the noise model: outside the runs' spread, and the test agrees
        r["changed"] = bool(r["changed"] and r["outside"] and r["has_samples"])
        r["regression"] = bool(r["regression"] and r["changed"])
        r["significant"] = bool(r["significant"] and r["outside"])
    lead = headline(rows, f"baseline {name}: {len(olds)} runs; outside the runs' 95% "
                          f"spread and {CORRECTION}-corrected per-second tests at alpha "
                          f"{ALPHA}, changes under {min_change:g}% ignored")
    return Comparison(render(rows, fmt, show_all, lead, _frame), crossed_gates(rows, gates),
                      notes, rows, gates)


def _num(v: float, digits: int = 3) -> str:
    return "n/a" if math.isnan(v) else f"{v:.{digits}f}"


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([{
        "model": r["model"], "name": r["name"], "metric": r["metric"],
        "baseline": _num(r["old"]), "spread": f"{_num(r['spread_lo'])}..{_num(r['spread_hi'])}",
        "new": _num(r["new"]),
        "delta": "n/a" if math.isnan(r["delta"]) else f"{r['delta']:+.2f}{r['unit']}",
        "ci95": "n/a" if math.isnan(r["ci_lo"]) else
        f"[{r['ci_lo']:+.1f}, {r['ci_hi']:+.1f}]{r['unit']}",
        "p_holm": "" if r.get("p_adj") is None else f"{r['p_adj']:.4f}",
        "verdict": "changed" if r["changed"] else
        ("~ inside the runs' spread" if not r["outside"] else "~")} for r in rows])
