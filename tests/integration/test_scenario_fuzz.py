"""Bad input never wins (issue 14): hand-picked cases that once gave a traceback or passed
validation only to fail after the load was sent, and property-based fuzzing of scenario
files (random documents, and random mutations of every shipped scenario).

`harness validate` is called in-process here (cli.main), so hypothesis can try hundreds of
documents; anything main() raises would be a traceback for a user."""

from __future__ import annotations

import contextlib
import io
import math
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from harness.cli import main
from tests.conftest import ROOT, load_meta, run_harness

SHIPPED = sorted((ROOT / "scenarios").glob("*.toml"))
GOOD = ('[run]\nduration = "1s"\n[load]\nconcurrency = 2\n[[requests]]\nname = "home"\n'
        'path = "/"\n[[models]]\nmodel = "asyncio"\n')


def validate(path: Path, *extra: str) -> tuple[int, str]:
    """`harness validate PATH` in this process: (exit code, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(["validate", str(path), *extra])
        except SystemExit as exc:  # argparse's own usage errors
            code = int(exc.code or 0)
    return code, err.getvalue()


@pytest.mark.parametrize("text, key", [
    (b"\xff\xfe[run]\nduration = 1\n", "not UTF-8"),
    (GOOD.encode() + b"\nx = \"\xe9\"\n", "not UTF-8"),
    (b"a = " + b"[" * 2000 + b"]" * 2000 + b"\n", "nested"),
    (b"a = " + b"{b = " * 2000 + b"1" + b"}" * 2000 + b"\n", "nested"),
    (b"a" + b".a" * 100_000 + b" = 1\n", "nested"),
], ids=["bom-latin1", "latin1-value", "deep-array", "deep-table", "deep-dotted-key"])
def test_unreadable_files_are_usage_errors(tmp_path, text: bytes, key: str):
    path = tmp_path / "bad.toml"
    path.write_bytes(text)
    start = time.monotonic()
    code, err = validate(path)
    assert code == 2 and "bad.toml" in err and key in err, err
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("override, key", [
    ("run.seed=99999999999999999999999999", "[run].seed"),
    ("load.concurrency=9223372036854775807", "[load].concurrency"),
    ('requests.0.headers={"X-A" = "a\\r\\nX-Injected: 1"}', "[[requests]][0].headers.X-A"),
    ('requests.0.path="/\\u0000x"', "[[requests]][0].path"),
    ('requests.0.path="/caf\\u00e9"', "[[requests]][0].path"),
    ("run.name=" + "n" * 300, "[run].name"),
    ('run.name="a/b"', "[run].name"),
    ("load.rate=1e300", "[load].rate"),
    ('run.duration="1e300s"', "[run].duration"),
    ('run.timeout="99999h"', "[run].timeout"),
    ("requests.0.weight=1e300", "[[requests]][0].weight"),
    ("models.0.processes=100000", "[[models]][0].processes"),
    ("models.0.cpu_work=99999999999999", "[[models]][0].cpu_work"),
    ("run.requests=99999999999999999999", "[run].requests"),
    ('target.mock.latency={dist="fixed", ms=1e308}', "[target.mock].latency.ms"),
    ('run.max_body="2GiB"', "[run].max_body"),
    ('run.max_body="1.5.2MiB"', "[run].max_body"),
    ("run.max_body=0", "[run].max_body"),
    ('run.max_memory="1MiB"', "[run].max_memory"),
    ("run.max_memory=99999999999999999999", "[run].max_memory"),
], ids=lambda v: str(v)[:30])
def test_values_that_would_fail_at_run_time_fail_validation(tmp_path, override: str, key: str):
    """Each of these validated, then failed after the load was sent (or sent a header
    injection, or half its requests answered 400): now exit 2 naming the key."""
    path = tmp_path / "s.toml"
    path.write_text(GOOD)
    code, err = validate(path, "--set", override)
    assert code == 2 and key in err, (override, err)


# -- property-based ------------------------------------------------------------------------

KEYS = st.sampled_from(["run", "load", "target", "requests", "models", "thresholds", "name",
                        "duration", "rate", "concurrency", "path", "headers", "model",
                        "engine", "mock", "latency", "dist", "ms", "x", "max_body",
                        "max_memory"])
SCALARS = st.one_of(st.integers(min_value=-2**70, max_value=2**70), st.floats(),
                    st.booleans(), st.text(max_size=30), st.just("10s"), st.just("/"),
                    st.just("1MiB"), st.just("64KiB"))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)), max_leaves=20)


def _write(path: Path, raw: dict[str, Any]) -> bool:
    try:
        path.write_text(tomli_w.dumps(raw))
    except (TypeError, ValueError):  # a value TOML cannot hold (nan keys, None...)
        return False
    return True


FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])


@FUZZ
@given(st.dictionaries(KEYS, VALUES, max_size=6))
def test_random_documents_exit_0_or_2(tmp_path, raw: dict[str, Any]):
    path = tmp_path / "random.toml"
    if _write(path, raw):
        code, err = validate(path)
        assert code in (0, 2), err
        assert code == 0 or err.startswith("harness: error: random.toml"), err


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated(draw, least: int = 1, most: int = 3) -> dict[str, Any]:
    """A shipped scenario with some of its values replaced, or keys dropped."""
    raw = tomllib.loads(draw(st.sampled_from(SHIPPED)).read_text())
    for _ in range(draw(st.integers(least, most))):
        paths = _paths(raw)
        if not paths:
            break
        where = draw(st.sampled_from(paths))
        parent = raw
        for part in where[:-1]:
            parent = parent[part]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[where[-1]]
        else:
            parent[where[-1]] = draw(VALUES)
    return raw


@FUZZ
@given(mutated())
def test_mutated_shipped_scenarios_exit_0_or_2(tmp_path, raw: dict[str, Any]):
    path = tmp_path / "mutated.toml"
    if _write(path, raw):
        start = time.monotonic()
        code, err = validate(path)
        assert code in (0, 2), err
        assert time.monotonic() - start < 5


def _runnable(raw: dict[str, Any]) -> dict[str, Any]:
    """What a fuzzed, accepted scenario becomes for a one-second run on this machine:
    the embedded mockserver only (never another address), 1 s, a few users."""
    raw = dict(raw)
    raw["target"] = {k: v for k, v in raw.get("target", {}).items() if k != "url"}
    run = {k: v for k, v in raw.get("run", {}).items() if k not in ("requests", "warmup")}
    raw["run"] = {**run, "duration": "1s", "workers": 1}
    load = {k: v for k, v in raw.get("load", {}).items() if k != "stages"}
    if "concurrency" in load:
        load["concurrency"] = min(int(load["concurrency"]), 8)
    if "rate" in load:
        load["rate"] = min(float(load["rate"]), 200.0)
    raw["load"] = load
    raw["models"] = [{**m, "processes": min(int(m.get("processes", 2)), 2),
                      "cpu_work": min(int(m.get("cpu_work", 0)), 1000)}
                     | ({"concurrency": min(int(m["concurrency"]), 8)}
                        if "concurrency" in m else {})
                     for m in raw.get("models", [{"model": "asyncio"}])][:2]
    raw.pop("thresholds", None)
    return raw


@settings(max_examples=6, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])
@given(mutated(least=0, most=2))
def test_what_validates_runs(tmp_path, raw: dict[str, Any]):
    """Anything validate accepts runs for a second against the embedded mock: no error,
    no traceback, sent == counted. (Six accepted examples: hypothesis draws until it has
    them.)"""
    path = tmp_path / "accepted.toml"
    assume(_write(path, raw) and validate(path)[0] == 0)
    runnable = _runnable(tomllib.loads(path.read_text()))
    assume(_write(path, runnable) and validate(path)[0] == 0)
    proc = run_harness("run", str(path), "--out", str(tmp_path), "--quiet", timeout=120)
    assert proc.returncode in (0, 1), proc.stderr  # 1: nothing succeeded (a 4xx profile)
    assert "Traceback" not in proc.stderr, proc.stderr
    meta = load_meta(proc.stdout.strip().splitlines()[-1])
    assert meta["requests_sent"] == meta["mockserver_stats"]["requests_total"]
    assert not math.isnan(float(meta["requests_sent"]))
