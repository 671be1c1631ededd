"""Every command-line option as a user may type it -- fuzzed, not listed: a value is
taken (within its documented range) or refused with exit 2 and one line naming the
option, never a traceback, never nan, inf, an empty path or a million workers."""

from __future__ import annotations

import contextlib
import io
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.cli import MAX_LOCAL_WORKERS, build_parser

VALUES = st.one_of(st.text(max_size=30), st.sampled_from(
    ["nan", "inf", "-inf", "1e9", "1000000", "0", "-1", "", " ", "\x00", "1\n2", "3",
     "0.05", "\x1b[31m", "x" * 2000]))
OPTIONS = [
    (["run", "s.toml", "--workers"], "workers", lambda v: 1 <= v <= MAX_LOCAL_WORKERS),
    (["run", "s.toml", "--out"], "out", lambda v: bool(v.strip()) and v.isprintable()),
    (["coordinator", "s.toml", "--expect-workers", "2", "--wait-workers"], "wait_workers",
     lambda v: math.isfinite(v) and 0.1 <= v <= 86400),
    (["coordinator", "s.toml", "--expect-workers", "2", "--lost-after"], "lost_after",
     lambda v: 0.5 <= v <= 3600),
    (["coordinator", "s.toml", "--expect-workers"], "expect_workers", lambda v: v >= 1),
    (["worker", "--connect", "tcp://127.0.0.1:5555", "--connect-timeout"], "connect_timeout",
     lambda v: math.isfinite(v) and 0.1 <= v <= 86400),
    (["worker", "--connect", "tcp://127.0.0.1:5555", "--name"], "name",
     lambda v: v.isprintable() and 0 < len(v) <= 256),
    (["keys"], "dir", lambda v: bool(v.strip()) and v.isprintable()),
    (["compare", "a", "b", "--min-change"], "min_change", lambda v: 0 <= v <= 1000),
]


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(OPTIONS), VALUES)
def test_any_option_value_is_taken_in_range_or_refused_in_one_line(option, value):
    args, dest, ok = option
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            parsed = build_parser().parse_args([*args, value])
    except SystemExit as exc:
        assert exc.code == 2
        err = stderr.getvalue()
        assert err.count("\n") == 1 and err.startswith("harness") and "error:" in err, err
        assert "Traceback" not in err and "\x1b" not in err and len(err) < 400, err
        return
    assert ok(getattr(parsed, dest)), (args, value, getattr(parsed, dest))


@pytest.mark.parametrize("args", [["run", "s.toml", "--workers", "1000000"],
                                  ["run", "s.toml", "--out", ""],
                                  ["keys", ""],
                                  ["worker", "--connect", "tcp://h:1", "--name", "a\nb"],
                                  ["coordinator", "s.toml", "--expect-workers", "1",
                                   "--wait-workers", "nan"],
                                  ["worker", "--connect", "tcp://h:1", "--connect-timeout",
                                   "inf"]])
def test_the_quoted_inputs_are_refused(capsys, args):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(args)
    assert exc.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1
