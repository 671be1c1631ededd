"""Invalid scenarios: exit 2, a message naming the file and the key, no traceback, and the
target counts zero requests."""

from __future__ import annotations

import pytest

from tests.conftest import Mock, run_harness

GOOD = """
[run]
duration = "1s"
[load]
concurrency = 2
[[requests]]
name = "home"
path = "/"
[[models]]
model = "asyncio"
"""

# (scenario text, the key the message must name)
BAD = [
    ("[run\nduration = 1", "TOML"),
    (GOOD + "\n[bogus]\nx = 1\n", "scenario.bogus"),
    (GOOD.replace('duration = "1s"', 'duration = "soon"'), "[run].duration"),
    (GOOD.replace('duration = "1s"', "duration = -5"), "[run].duration"),
    (GOOD.replace('duration = "1s"', 'duration = "1s"\nrequests = 0'), "[run].requests"),
    (GOOD.replace('duration = "1s"', 'duration = "1s"\nwarmup = "x"'), "[run].warmup"),
    (GOOD.replace('duration = "1s"', 'duration = "1s"\nworkers = "two"'), "[run].workers"),
    (GOOD.replace('duration = "1s"', 'duration = "1s"\ncolour = "red"'), "[run].colour"),
    (GOOD.replace('duration = "1s"', ""), "[run]"),
    (GOOD.replace("concurrency = 2", 'rate = "fast"'), "[load].rate"),
    (GOOD.replace("concurrency = 2", "rate = 0"), "[load].rate"),
    (GOOD.replace("concurrency = 2", "concurrency = 0"), "[load].concurrency"),
    (GOOD.replace("concurrency = 2", "concurrency = 1.5"), "[load].concurrency"),
    (GOOD.replace("concurrency = 2", 'mode = "sideways"'), "[load].mode"),
    (GOOD.replace("concurrency = 2", 'mode = "open"'), "[load].rate"),
    (GOOD.replace("concurrency = 2", 'stages = [{ duration = "1s" }]'),
     "[load].stages[0].target"),
    (GOOD.replace('model = "asyncio"', 'model = "goroutines"'), "[[models]][0].model"),
    (GOOD.replace('model = "asyncio"', 'model = "thread"\nengine = "fast"'),
     "[[models]][0].engine"),
    (GOOD.replace('model = "asyncio"', 'model = "process"\nprocesses = 0'),
     "[[models]][0].processes"),
    (GOOD.replace('path = "/"', 'path = "no-slash"'), "[[requests]][0].path"),
    (GOOD.replace('path = "/"', 'path = "/"\nmethod = "FETCH"'), "[[requests]][0].method"),
    (GOOD.replace('path = "/"', 'path = "/"\nweight = -1'), "[[requests]][0].weight"),
    (GOOD.replace('path = "/"', 'path = "/"\nexpect_status = "ok"'),
     "[[requests]][0].expect_status"),
    (GOOD.replace('path = "/"', 'path = "/"\nheaders = { Accept = 5 }'),
     "[[requests]][0].headers.Accept"),
    (GOOD.split("[[requests]]")[0] + '[[models]]\nmodel = "asyncio"\n', "[[requests]]"),
    (GOOD + '\n[[requests]]\nname = "home"\n', "[[requests]][1].name"),
    (GOOD + '\n[thresholds]\np99_ms = "fast"\n', "[thresholds].p99_ms"),
    (GOOD + '\n[thresholds]\nlatency = "< 5"\n', "[thresholds].latency"),
    (GOOD + '\n[thresholds.nothere]\np99_ms = "< 5"\n', "[thresholds.nothere]"),
    (GOOD + '\n[target]\nurl = "ftp://example"\n', "[target].url"),
    (GOOD + '\n[target.mock]\nlatency = { dist = "gamma" }\n', "[target.mock].latency.dist"),
    (GOOD.replace('path = "/"', 'path = "${LH_SURELY_UNSET_VAR}"'), "[[requests]][0].path"),
    (GOOD.replace("concurrency = 2", "rate = 10").replace('model = "asyncio"',
                                                           'model = "locust"'),
     "[[models]][0].model"),
    # [capacity]: every key checked before anything is sent
    (GOOD + '\n[capacity]\nslo = { p99_ms = "< 100" }\nstart_rate = 500\nmax_rate = 100\n',
     "[capacity].max_rate"),
    (GOOD + '\n[capacity]\nslo = { p99_ms = "< 100" }\nprecision = 0.7\n',
     "[capacity].precision"),
    (GOOD + '\n[capacity]\nslo = { p99_ms = "< 100" }\nmax_steps = 101\n',
     "[capacity].max_steps"),
    (GOOD + '\n[capacity]\nslo = { rps = "> 100" }\n', "[capacity].slo.rps"),
    (GOOD + '\n[capacity]\nslo = { p99_ms = "fast" }\n', "[capacity].slo.p99_ms"),
    (GOOD + '\n[capacity]\nstart_rate = 100\n', "[capacity].slo"),
    (GOOD + '\n[capacity]\nslo = { p99_ms = "< 100" }\nover = "users"\n', "[capacity].over"),
    (GOOD.replace("concurrency = 2", 'stages = [{ duration = "1s", target = 2 }]')
     + '\n[capacity]\nslo = { p99_ms = "< 100" }\n', "[capacity]"),
    (GOOD.replace('model = "asyncio"', 'model = "locust"')
     + '\n[capacity]\nslo = { p99_ms = "< 100" }\n', "[[models]][0].model"),
    (GOOD + '\n[thresholds]\nabort_after = "soon"\np99_ms = "< 5"\n',
     "[thresholds].abort_after"),
    (GOOD + '\n[thresholds]\nabort_after = "5s"\n', "[thresholds].abort_after"),
]


@pytest.fixture(scope="module")
def target(shared_mock: Mock) -> Mock:
    return shared_mock


@pytest.mark.parametrize("text, key", BAD, ids=[k for _, k in BAD])
def test_invalid_scenario_exits_2_and_sends_nothing(tmp_path, target: Mock, text: str,
                                                     key: str):
    path = tmp_path / "broken.toml"
    path.write_text(text)
    proc = run_harness("run", str(path), "--target", target.url, "--out", str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("harness: error: broken.toml: ")
    assert key in proc.stderr, proc.stderr
    assert target.stats()["requests_total"] == 0
    assert not any(tmp_path.glob("*/meta.json"))  # nothing half-done


def test_bad_set_and_missing_file(tmp_path, target: Mock):
    path = tmp_path / "ok.toml"
    path.write_text(GOOD)
    proc = run_harness("run", str(path), "--target", target.url, "--set", "load.rate=fast",
                       "--set", "load.mode=open")
    assert proc.returncode == 2 and "ok.toml: [load].rate" in proc.stderr
    proc = run_harness("run", str(tmp_path / "missing.toml"))
    assert proc.returncode == 2 and "missing.toml" in proc.stderr
    proc = run_harness("validate", str(path))
    assert proc.returncode == 0 and "ok" in proc.stdout
    # a --set of the wrong shape was a TypeError traceback; a 100 kB value or one with CR/LF
    # and a terminal escape is quoted escaped, on one line, cut
    for assignment, key in (("load.stages=5", "[load].stages"),
                            ("run.duration=" + "9" * 100_000, "[run].duration"),
                            ("run.duration=1\r\nx\x1b[31m", "[run].duration")):
        proc = run_harness("validate", str(path), "--set", assignment)
        assert proc.returncode == 2 and key in proc.stderr, proc.stderr
        assert proc.stderr.count("\n") == 1 and len(proc.stderr) < 400, proc.stderr[:500]
        assert "Traceback" not in proc.stderr and "\x1b" not in proc.stderr
    assert target.stats()["requests_total"] == 0


def test_at_least_twenty_cases():
    assert len(BAD) >= 20


def test_unwritable_out_dir_sends_nothing(tmp_path, target: Mock):
    """Results that could not be written must not cost a run: --out is made and checked
    before the target sees a request."""
    path = tmp_path / "ok.toml"
    path.write_text(GOOD)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    for out in (blocker, blocker / "below"):
        proc = run_harness("run", str(path), "--target", target.url, "--out", str(out))
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert f"--out {out}: cannot create it" in proc.stderr, proc.stderr
    assert target.stats()["requests_total"] == 0


def test_unset_turns_an_open_model_file_closed(tmp_path, target: Mock):
    """--unset removes a key before validation (and before --set): an open-model file
    becomes a closed one; a key that is not there is exit 2 naming it."""
    path = tmp_path / "open.toml"
    path.write_text(GOOD.replace("concurrency = 2", 'mode = "open"\nrate = 50\nconcurrency = 2'))
    proc = run_harness("validate", str(path), "--unset", "load.rate")
    assert proc.returncode == 2 and "[load].rate" in proc.stderr  # mode is still open
    proc = run_harness("validate", str(path), "--unset", "load.rate", "--unset", "load.mode")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("ok (1 model, 1 request)")
    proc = run_harness("run", str(path), "--target", target.url, "--out", str(tmp_path),
                       "--unset", "load.nope")
    assert proc.returncode == 2 and "--unset load.nope: no such key" in proc.stderr
    assert target.stats()["requests_total"] == 0


def test_mock_settings_ignored_with_a_target_say_so(tmp_path, target: Mock):
    path = tmp_path / "mocked.toml"
    path.write_text(GOOD.replace("[load]", "[target.mock]\nstatus = 503\n[load]")
                    .replace('duration = "1s"', "requests = 5"))
    proc = run_harness("run", str(path), "--target", target.url, "--out", str(tmp_path),
                       "--quiet")
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if "[target.mock]" in line]
    assert len(notes) == 1 and "--target is set" in notes[0] and "ignored" in notes[0]


@pytest.mark.parametrize("content", [
    b"SECRET_KEY=s3cr3t-v4lue-that-must-not-be-echoed-anywhere\nOTHER=1\n",
    b"root:$6$saltsalt$h4shh4shh4shh4shh4sh:19000:0:99999:7:::\n",
    b"A=1\x00PATH=/usr/bin\x00TOKEN=s3cr3t-v4lue-that-must-not-be-echoed-anywhere\x00"])
def test_a_data_file_that_is_no_csv_is_named_not_echoed(tmp_path, content):
    """A [[data]] file pointing at a .env, a shadow-style file or /proc/self/environ: the
    error names the file and the column, never more than its first 16 characters (it
    quoted ~100 characters of the file's first line)."""
    data = tmp_path / "users.csv"
    data.write_bytes(content)
    path = tmp_path / "d.toml"
    path.write_text('[run]\nrequests = 1\n[[data]]\nname = "users"\nfile = "users.csv"\n'
                    '[[flows]]\nname = "f"\n[[flows.steps]]\npath = "/{{users.name}}"\n'
                    '[[models]]\nmodel = "thread"\n')
    proc = run_harness("validate", str(path))
    assert proc.returncode == 2 and "users.csv column 1 is" in proc.stderr, proc.stderr
    assert "must-not-be-echoed" not in proc.stderr and "h4sh" not in proc.stderr
    assert proc.stderr.count("\n") == 1
