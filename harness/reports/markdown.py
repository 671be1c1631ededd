"""A run in a few lines for a CI page: the Markdown summary (GitHub's step summary) and
the outputs a workflow reads (p99 and requests/s of each model). Reads result files only."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from harness.errors import ReportError
from harness.reports.intervals import AGGREGATED
from harness.reports.results import read_csv


def _read(run_dir: Path) -> tuple[dict[str, Any], Any]:
    try:
        meta = json.loads((run_dir / "meta.json").read_text())
        summary = read_csv(run_dir / "summary.csv", "summary")
    except (OSError, ValueError) as exc:
        raise ReportError(f"{run_dir}: not a finished run directory ({exc})") from None
    return meta, summary


def _ms(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{v:,.2f}"


def _cell(text: object) -> str:
    """A value in a Markdown table cell: no pipe or newline can break the row."""
    return str(text).replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def table(columns: list[str], rows: list[list[object]], align: str = "") -> list[str]:
    """The one Markdown table writer (the run summary's and compare's): every cell escaped,
    a column right-aligned where `align` has an "r" at its position."""
    marks = ["---:" if align[i:i + 1] == "r" else "---" for i in range(len(columns))]
    return ["| " + " | ".join(_cell(c) for c in columns) + " |",
            "|" + "|".join(marks) + "|",
            *("| " + " | ".join(_cell(v) for v in row) + " |" for row in rows)]


def markdown(run_dir: Path) -> str:
    meta, summary = _read(run_dir)
    crossed = meta.get("thresholds_crossed") or []
    name = meta.get("scenario", {}).get("name", run_dir.name)
    state = "thresholds crossed" if crossed else "partial" if meta.get("partial") else "passed"
    lines = [f"### loadharness: {_cell(name)} — {state}", "",
             f"run `{_cell(meta.get('run_id', run_dir.name))}` against "
             f"`{_cell(meta.get('target_url'))}`", ""]
    lines += table(["model", "requests", "failures", "req/s", "p50 ms", "p95 ms", "p99 ms"],
                   [[r.model, f"{r.requests:,}", f"{r.failures:,}", f"{r.rps:,.1f}",
                     _ms(r.p50_ms), _ms(r.p95_ms), _ms(r.p99_ms)]
                    for r in summary[summary["name"] == AGGREGATED].itertuples()], "_rrrrrr")
    if crossed:
        lines += ["", "**Thresholds crossed:**", *(f"- {_cell(c)}" for c in crossed)]
    if meta.get("verdict"):
        lines += ["", f"Verdict: {_cell(meta['verdict'])}"]
    return "\n".join(lines) + "\n"


def github_outputs(run_dir: Path) -> str:
    """`key=value` lines for $GITHUB_OUTPUT: p99-ms and rps, each a JSON object by model."""
    _, summary = _read(run_dir)
    agg = summary[summary["name"] == AGGREGATED]

    def obj(col: str) -> str:
        return json.dumps({str(m): (None if math.isnan(v) else round(float(v), 3))
                           for m, v in zip(agg["model"], agg[col], strict=True)})
    return f"p99-ms={obj('p99_ms')}\nrps={obj('rps')}\n"
