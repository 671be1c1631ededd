"""junit.xml: a run's gates as test cases, the file every CI server reads (Jenkins,
GitLab, GitHub test reporters), in the shape of the Jenkins/Surefire JUnit schema.

A run: one test suite per model; a case per threshold (on the row it names: Aggregated or
a request name) with the measured value and the limit in its message, failed when crossed;
a case "some request succeeded"; a case "measured the target, not the generator" (failed
when the model's load process saturated its client). A comparison (`harness compare
--junit FILE`): one suite, a case per gate and row, failed when the gate fired.
"""

from __future__ import annotations

import math
import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from harness.reports.intervals import AGGREGATED
from harness.reports.thresholds import judge


@dataclass
class Case:
    name: str
    classname: str
    failure: str | None = None     # the message when the case failed
    skipped: str | None = None


@dataclass
class Suite:
    name: str
    cases: list[Case] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)


def _xml_text(text: str) -> str:
    """XML 1.0 cannot hold most control characters: a hostile request name must not make
    the file unreadable to the CI server."""
    return "".join(c if c in "\t\n\r" or (c >= " " and c not in "\ufffe\uffff"
                                        and not "\ud800" <= c <= "\udfff") else "\ufffd"
                   for c in str(text))


def render(suites: Iterable[Suite], name: str) -> bytes:
    suites = list(suites)
    root = ET.Element("testsuites", name=_xml_text(name))
    total = failed = 0
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    for suite in suites:
        fails = sum(1 for c in suite.cases if c.failure is not None)
        skips = sum(1 for c in suite.cases if c.skipped is not None)
        el = ET.SubElement(root, "testsuite", name=_xml_text(suite.name),
                           tests=str(len(suite.cases)), failures=str(fails), errors="0",
                           skipped=str(skips), timestamp=stamp, hostname=socket.gethostname())
        if suite.properties:
            props = ET.SubElement(el, "properties")
            for k, v in suite.properties.items():
                ET.SubElement(props, "property", name=_xml_text(k), value=_xml_text(v))
        for case in suite.cases:
            c = ET.SubElement(el, "testcase", name=_xml_text(case.name),
                              classname=_xml_text(case.classname))
            if case.failure is not None:
                f = ET.SubElement(c, "failure", message=_xml_text(case.failure),
                                  type="threshold")
                f.text = _xml_text(case.failure)
            elif case.skipped is not None:
                ET.SubElement(c, "skipped", message=_xml_text(case.skipped))
        total += len(suite.cases)
        failed += fails
    root.set("tests", str(total))
    root.set("failures", str(failed))
    root.set("errors", "0")
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def _value(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{v:.4g}"


def run_suites(scenario: Any, summary: pd.DataFrame, invalid: dict[str, str]) -> list[Suite]:
    """One suite per model. `invalid`: model -> why its numbers are the generator's."""
    suites = []
    judged = judge(scenario, summary)
    for model in dict.fromkeys(summary["model"]):
        rows = summary[summary["model"] == model]
        cls = f"{scenario.name}.{model}"
        suite = Suite(str(model), properties={"scenario": scenario.name})
        for j in (j for j in judged if j.model == str(model)):
            th = j.threshold
            case = Case(f"threshold {th}", cls)
            if j.row_missing:
                case.skipped = f"no row {th.request!r} for {model}"  # type: ignore[attr-defined]
            elif j.crossed:
                case.failure = (f"{model}: {th.metric} measured {_value(j.actual)}, "  # type: ignore[attr-defined]
                                f"limit {j.limit}")
            suite.cases.append(case)
        agg = rows[rows["name"] == AGGREGATED]
        ok = int(agg.iloc[0]["requests"] - agg.iloc[0]["failures"]) if not agg.empty else 0
        suite.cases.append(Case("some request succeeded", cls, None if ok > 0 else
                                f"{model}: no request succeeded"))
        suite.cases.append(Case("measured the target, not the generator", cls,
                                invalid.get(str(model))))
        suites.append(suite)
    return suites


def write_run_junit(run_dir: Path, scenario: Any, summary: pd.DataFrame,
                    invalid: dict[str, str]) -> Path:
    out = run_dir / "junit.xml"
    tmp = out.with_name("junit.xml.tmp")
    tmp.write_bytes(render(run_suites(scenario, summary, invalid), f"loadharness "
                                                                   f"{scenario.name}"))
    tmp.replace(out)
    return out


def compare_suites(rows: list[dict[str, Any]], gates: list[tuple[str, float, str]],
                   label: str) -> list[Suite]:
    """A case per gate and compared row (model and request name); failed when it fired."""
    from harness.reports.compare import crossed_gates
    suite = Suite(label)
    for metric, bound, unit in gates:
        for r in rows:
            if r["metric"] != metric or r["unit"] != unit:
                continue
            case = Case(f"{r['model']} {r['name']} {metric} within {bound:+g}{unit}",
                        f"compare.{r['model']}")
            fired = crossed_gates([r], [(metric, bound, unit)])
            if fired:
                ci = ""
                if not math.isnan(r.get("ci_lo", math.nan)):
                    ci = f", 95% interval [{r['ci_lo']:+.1f}, {r['ci_hi']:+.1f}]{unit}"
                case.failure = (f"{fired[0]}: measured {_value(r['new'])} against "
                                f"{_value(r['old'])}{ci}")
            suite.cases.append(case)
    return [suite]


def write_compare_junit(path: Path, rows: list[dict[str, Any]],
                        gates: list[tuple[str, float, str]], label: str) -> None:
    path.write_bytes(render(compare_suites(rows, gates, label), "loadharness compare"))
