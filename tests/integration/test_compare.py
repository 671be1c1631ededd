"""harness compare on real runs (ours, and Locust run headless against the mockserver)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Mock, made_once, run_harness

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

SCENARIO = """
[run]
duration = "8s"
seed = 3
[target.mock]
latency = {{ dist = "lognormal", median_ms = {median}, p99_ms = {p99} }}
[load]
mode = "open"
rate = 40
concurrency = 1
[[requests]]
name = "home"
path = "/"
[[models]]
model = "uvloop"
engine = "fast"
"""


def run(tmp: Path, median: float, tag: str) -> str:
    path = tmp / f"{tag}.toml"
    path.write_text(SCENARIO.format(median=median, p99=median * 4))
    proc = run_harness("run", str(path), "--out", str(tmp / tag), "--quiet")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, str]:
    def make() -> dict[str, str]:
        tmp = tmp_path_factory.mktemp("compare")
        # Two runs of one scenario (the embedded mock is seeded: the same latency draws),
        # and one against a target made three times slower.
        return {"a": run(tmp, 10, "a"), "b": run(tmp, 10, "b"), "slow": run(tmp, 30, "slow")}
    return made_once("compare_runs", make)


def rows(proc: subprocess.CompletedProcess[str]) -> dict[tuple[str, str], dict]:
    return {(r["name"], r["metric"]): r for r in json.loads(proc.stdout)}


def test_same_scenario_is_not_significant(runs):
    proc = run_harness("compare", runs["a"], runs["b"], "--format", "json")
    assert proc.returncode == 0, proc.stderr
    got = rows(proc)
    for metric in ("rps", "p50", "p99", "errors"):
        r = got[("Aggregated", metric)]
        assert not r["significant"], r
        assert r["n"] == "n=8+8"
    table = run_harness("compare", runs["a"], runs["b"], "--all")
    assert table.stdout.startswith("no change beyond noise")
    assert "~ (p=" in table.stdout


def test_slower_target_is_a_real_difference(runs):
    proc = run_harness("compare", runs["a"], runs["slow"], "--format", "json")
    r = rows(proc)[("Aggregated", "p50")]
    assert r["significant"] and r["p"] < 0.01 and r["delta"] > 100


def test_gates(runs):
    gate = "p50:+20%,p99:+50%,rps:-10%,errors:+0.5pp"
    ok = run_harness("compare", runs["a"], runs["b"], "--fail-on", gate)
    assert ok.returncode == 0, ok.stderr
    bad = run_harness("compare", runs["a"], runs["slow"], "--fail-on", gate)
    assert bad.returncode == 99
    assert "gate crossed: uvloop-fast Aggregated p50" in bad.stderr
    assert "p50" in bad.stdout  # the table is printed before the verdict
    assert run_harness("compare", runs["a"], runs["b"], "--fail-on", "p42:+1%").returncode == 2


def test_formats(runs):
    md = run_harness("compare", runs["a"], runs["slow"], "--format", "markdown").stdout
    assert md.startswith("**") and md.splitlines()[0].endswith("**")
    assert "regression" in md.splitlines()[0]
    assert "\n| model | name | metric |" in md
    rows_csv = list(csv.DictReader(io.StringIO(
        run_harness("compare", runs["a"], runs["slow"], "--format", "csv").stdout)))
    assert {r["metric"] for r in rows_csv} == {"rps", "p50", "p95", "p99", "errors"}
    summary = str(Path(runs["a"]) / "summary.csv")
    assert run_harness("compare", summary, runs["b"]).returncode == 0


def test_bad_inputs_exit_2(runs, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    junk = tmp_path / "junk.csv"
    junk.write_text("a,b\n1,2\n")
    other = tmp_path / "other.csv"
    other.write_text((Path(runs["a"]) / "summary.csv").read_text()
                     .replace("uvloop-fast", "thread").replace("home", "elsewhere")
                     .replace("Aggregated", "Total"))
    for args, named in (([runs["a"], str(empty)], "empty.csv"),
                        ([runs["a"], str(junk)], "junk.csv"),
                        ([runs["a"], str(tmp_path / "nope")], "nope"),
                        ([runs["a"], str(other)], "other.csv"),
                        ([str(tmp_path), runs["a"]], str(tmp_path)),
                        ([runs["a"]], "at least two")):
        proc = run_harness("compare", *args)
        assert proc.returncode == 2, (args, proc.stdout)
        assert named in proc.stderr and "Traceback" not in proc.stderr


def test_against_locust(runs, tmp_path, shared_mock: Mock):
    prefix = tmp_path / "loc"
    locust = Path(sys.executable).parent / "locust"
    proc = subprocess.run([str(locust), "-f", str(FIXTURES / "locustfile.py"), "--headless",
                           "-u", "2", "-r", "2", "-t", "6s", "--host", shared_mock.url,
                           "--csv", str(prefix), "--csv-full-history", "--only-summary",
                           "--loglevel", "WARNING"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    stats = f"{prefix}_stats.csv"
    cmp_ = run_harness("compare", runs["a"], stats, "--format", "json")
    assert cmp_.returncode == 0, cmp_.stderr
    got = json.loads(cmp_.stdout)
    names = {r["name"] for r in got}
    assert names == {"home", "Aggregated"}
    assert all(r["model"] == "uvloop-fast -> locust" for r in got)
    # Locust's per-second history gives the samples on its side.
    assert all(r["n"].startswith("n=8+") and not r["n"].endswith("+0") for r in got)

    # Without --csv-full-history Locust writes history for its Aggregated row only: compare
    # says that, not "run each side for at least 4 s" of a 6-s run
    short = tmp_path / "nohist"
    proc = subprocess.run([str(locust), "-f", str(FIXTURES / "locustfile.py"), "--headless",
                           "-u", "2", "-r", "2", "-t", "6s", "--host", shared_mock.url,
                           "--csv", str(short), "--only-summary", "--loglevel", "WARNING"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    gated = run_harness("compare", runs["a"], f"{short}_stats.csv", "--fail-on", "p50:+10%")
    assert gated.returncode == 2 and "--csv-full-history" in gated.stderr, gated.stderr
    assert "at least 4 s" not in gated.stderr
    plain = run_harness("compare", runs["a"], f"{short}_stats.csv")
    assert plain.returncode == 0 and "--csv-full-history" in plain.stderr


SHORT = """
[run]
duration = "1.5s"
[load]
concurrency = 2
[[requests]]
name = "home"
path = "/"
{extra}
[[models]]
model = "thread"
"""


def short_run(tmp: Path, tag: str, extra: str = "", target: str | None = None) -> str:
    path = tmp / f"{tag}.toml"
    path.write_text(SHORT.format(extra=extra))
    args = ["run", str(path), "--out", str(tmp / tag), "--quiet"]
    proc = run_harness(*args, *(["--target", target] if target else []))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def test_short_runs_refuse_gates_instead_of_passing(tmp_path, shared_mock: Mock):
    """1.5 s runs give 2 one-second samples a side: no gate could ever fire. --fail-on
    refuses (exit 2, saying why) instead of passing silently; without gates a note says
    the comparison cannot judge significance. Rows only one side has are listed, and a
    comparison of different targets is warned about."""
    a = short_run(tmp_path, "a")
    b = short_run(tmp_path, "b", extra='[[requests]]\nname = "extra"\npath = "/bytes/10"',
                  target=shared_mock.url)
    gated = run_harness("compare", a, b, "--fail-on", "p50:+10%")
    assert gated.returncode == 2, gated.stdout
    assert "too few per-second samples" in gated.stderr and "Traceback" not in gated.stderr
    plain = run_harness("compare", a, b)
    assert plain.returncode == 0, plain.stderr
    assert "note: too few per-second samples" in plain.stderr
    assert "warning: different targets" in plain.stderr and shared_mock.url in plain.stderr
    assert f"not compared: thread/extra (only in {b})" in plain.stderr


def test_same_embedded_target_is_not_a_different_target(runs):
    """The embedded mockserver listens on a new port each run: the same settings are the
    same target; other settings are not."""
    same = run_harness("compare", runs["a"], runs["b"])
    assert "different targets" not in same.stderr
    other = run_harness("compare", runs["a"], runs["slow"])
    assert "warning: different targets" in other.stderr and "median_ms" in other.stderr
