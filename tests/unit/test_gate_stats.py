"""The CI gate's pieces without runs: Holm's adjustment, the headline, baseline names and
junit.xml of hostile names (fuzzed: one-line errors and valid XML, never a traceback)."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
import xmlschema
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import PermutationMethod, mannwhitneyu

from harness.errors import BaselineError
from harness.reports.baselines import Spread, baseline_dir
from harness.reports.compare import correct, exact_rank_sum_p, headline, holm, significance
from harness.reports.junit import Case, Suite, render

JUNIT_XSD = Path(__file__).resolve().parents[1] / "fixtures" / "junit-10.xsd"


def test_holm_matches_the_textbook_example():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> kept monotone
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([]) == []
    assert holm([0.9, 0.8]) == [1.0, 1.0]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=40))
def test_holm_never_smaller_than_raw_and_monotone(ps):
    adj = holm(ps)
    assert all(a >= p - 1e-12 and a <= 1.0 for a, p in zip(adj, ps, strict=True))
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    assert all(adj[order[i]] <= adj[order[i + 1]] + 1e-12 for i in range(len(ps) - 1))


def test_small_samples_with_ties_get_the_exact_p_value():
    """Per-second percentiles come from histogram cells, so ties are the rule: eight
    seconds a side fully apart is p = 2/C(16,8) exactly, not the normal approximation's
    0.00093 -- which Holm over 10 rows turned into 0.0093 and one more swapped second
    into a 30% slower run passed as noise."""
    a = [22.511, 20.495, 22.511, 22.095, 20.527, 22.431, 20.159, 21.711]
    b = [29.167, 27.199, 27.679, 28.783, 26.959, 28.863, 26.751, 29.359]
    p, n = significance(a, b)
    assert n == "n=8+8"
    assert p == pytest.approx(2 / math.comb(16, 8))
    # one second of a above one of b (U = 1): 4 of the 12870 splits are as extreme
    p_swap, _ = significance(a[:-1] + [26.8], b)
    assert p_swap == pytest.approx(4 / math.comb(16, 8))
    # large samples keep the normal approximation
    big, _ = significance([float(i % 7) for i in range(400)], [i % 7 + 0.5 for i in range(400)])
    assert 0 < big < 0.05


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=4, max_size=8),
       st.lists(st.integers(0, 6), min_size=4, max_size=8))
def test_exact_p_value_is_scipys_permutation_test(a, b):
    """scipy's own exact permutation test is the oracle for the fast enumeration."""
    a, b = [float(x) for x in a], [float(x) for x in b]
    splits = math.comb(len(a) + len(b), len(a))
    oracle = mannwhitneyu(a, b, alternative="two-sided",
                          method=PermutationMethod(n_resamples=splits + 1)).pvalue
    assert exact_rank_sum_p(a, b) == pytest.approx(oracle, abs=1e-9)


def _row(metric: str, delta: float, p: float | None) -> dict:
    return {"model": "m", "name": "n", "metric": metric, "delta": delta,
            "unit": "pp" if metric == "errors" else "%", "p": p, "has_samples": True}


def test_correct_asks_for_holm_and_the_minimum_change():
    rows = [_row("p50", 30.0, 0.001), _row("p99", 3.0, 0.0001), _row("rps", -20.0, 0.2),
            _row("errors", 1.0, 0.002), _row("p95", 50.0, None)]
    correct(rows, 5.0)
    changed = [(r["metric"], r["regression"]) for r in rows if r["changed"]]
    # p99 survives Holm but moved 3% (< 5%); rps (p 0.2) does not survive; p95 untested
    assert changed == [("p50", True), ("errors", True)]
    assert headline(rows, "x").startswith("2 regressions: m n p50 +30.0%, m n errors +1.0pp")
    improved = [_row("p50", -30.0, 0.0001)]
    correct(improved)
    assert headline(improved, "x").startswith("1 improvement: m n p50 -30.0%")


def test_spread_interval_is_a_prediction_interval():
    s = Spread([10.0, 11.0, 12.0])
    lo, hi = s.interval()
    # t(0.975, 2) = 4.303; sd = 1; sqrt(1 + 1/3) = 1.1547
    assert (hi - lo) / 2 == pytest.approx(4.303 * 1.1547, rel=1e-3)
    assert math.isnan(Spread([1.0]).interval()[0])


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_baseline_name_is_a_directory_below_or_a_one_line_error(name):
    root = Path(tempfile.gettempdir()) / "baselines-root"
    try:
        path = baseline_dir(root, name)
    except BaselineError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 200
        return
    assert path.parent == root and path.name == name and "/" not in name


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=30), st.text(max_size=30))
def test_junit_of_any_names_validates(name, message):
    schema = xmlschema.XMLSchema(str(JUNIT_XSD))
    doc = render([Suite(name, [Case(name, name, failure=message), Case("ok", name)],
                        {"scenario": name})], name)
    schema.validate(doc.decode("utf-8"))


def test_compare_markdown_cells_are_escaped():
    """compare's Markdown and the run summary share one table writer: a pipe or newline in
    a request name cannot break a row."""
    import pandas as pd

    from harness.reports.compare import table_text
    text = table_text(pd.DataFrame([{"name": "a|b\nc", "delta": "+1%"}]), "markdown")
    assert text.splitlines() == ["| name | delta |", "|---|---|", "| a\\|b c | +1% |"]
