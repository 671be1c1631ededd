"""User journeys, run as a user runs them: a login that hands out a token and a session
cookie, used by the next steps, in every model, against the embedded mock (which counts
every token that reached it intact); test data in each order; values escaped for where
they land, seen at a raw socket."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pandas as pd

from tests.conftest import load_meta, run_harness
from tests.integration.test_run_models import MODELS
from tests.rawserver import RawServer

USERS = 'id,name,password\n1,linus,pw1\n2,"linus, ""jr""",pw2\n3,Jürgen,"p,w3"\n'

LOGIN = '''[[data]]
name = "users"
file = "users.csv"
order = "per-user"
[[flows]]
name = "session"
[[flows.steps]]
name = "login"
method = "POST"
path = "/auth/login"
headers = { "Content-Type" = "application/json" }
body = '{"user": "{{users.name}}", "password": "{{users.password}}"}'
extract = { token = { json = "$.token" } }
expect_status = 200
[[flows.steps]]
name = "profile"
path = "/auth/me?id={{users.id}}&n={{iteration}}"
headers = { "Authorization" = "Bearer {{token}}" }
[[flows.steps]]
name = "by-cookie"
path = "/auth/me"
'''


def write(tmp_path: Path, body: str, models: list[str], run: str = 'duration = "1s"',
          load: str = "concurrency = 3", users: str = USERS) -> Path:
    (tmp_path / "users.csv").write_text(users, encoding="utf-8")
    path = tmp_path / "journey.toml"
    path.write_text(f"[run]\n{run}\n[load]\n{load}\n{body}\n"
                    + "".join(f"[[models]]\n{m}\n" for m in models), encoding="utf-8")
    return path


def run(path: Path, tmp_path: Path, *args: str) -> tuple[int, Path, str]:
    proc = run_harness("run", str(path), "--out", str(tmp_path / "out"), "--quiet", *args,
                       timeout=300)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, Path(proc.stdout.strip().splitlines()[-1]), proc.stderr


def rows(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "summary.csv").set_index(["model", "name"])


def test_login_journey_in_every_model(tmp_path):
    """Every model in one run: every token and every session cookie a model extracted and
    sent back reached the mock intact (auth_ok is every /auth/me step the models reported,
    auth_rejected is 0); each flow row counts whole iterations; each Aggregated row counts
    requests on the wire, flow rows left out."""
    code, run_dir, err = run(write(tmp_path, LOGIN, MODELS, run='duration = "0.6s"'),
                             tmp_path)
    assert code == 0, err
    meta = load_meta(str(run_dir))
    stats = meta["mockserver_stats"]
    summary = rows(run_dir)
    assert len(meta["models"]) == len(MODELS) and summary["failures"].sum() == 0
    assert meta["requests_sent"] == stats["requests_total"]
    me = 0
    for label in meta["models"]:
        steps = {n: summary.loc[(label, n), "requests"] for n in ("login", "profile",
                                                                   "by-cookie")}
        assert steps["login"] > 0, label
        me += steps["profile"] + steps["by-cookie"]
        # an iteration in flight at the end has sent some steps, not all
        flow = summary.loc[(label, "flow:session"), "requests"]
        assert steps["by-cookie"] <= flow <= steps["login"], label
        assert summary.loc[(label, "Aggregated"), "requests"] == sum(steps.values()), label
    assert stats["auth_rejected"] == 0 and stats["auth_ok"] == me > 0


def test_failed_extraction_aborts_the_iteration(tmp_path):
    """A regex that finds nothing: the step is extract_failed, the rest of the iteration
    is never sent (no /auth/me reaches the mock), the flow row counts it aborted."""
    body = LOGIN.replace('extract = { token = { json = "$.token" } }',
                         'extract = { token = { regex = "nothing-like-this-(\\\\d+)" } }')
    code, run_dir, _ = run(write(tmp_path, body, ['model = "uvloop"\nengine = "fast"',
                                                  'model = "thread"']), tmp_path)
    assert code == 1   # every request failed: each login's extraction found nothing
    stats = load_meta(str(run_dir))["mockserver_stats"]
    assert stats["by_route"].get("/auth/me", 0) == 0 and stats["auth_ok"] == 0
    errors = pd.read_csv(run_dir / "errors.csv")
    kinds = errors.groupby(["name", "kind"])["count"].sum()
    summary = rows(run_dir)
    for label in ("uvloop-fast", "thread"):
        logins = summary.loc[(label, "login"), "requests"]
        assert summary.loc[(label, "login"), "failures"] == logins > 0
        assert summary.loc[(label, "flow:session"), "failures"] == \
            summary.loc[(label, "flow:session"), "requests"] == logins
    assert set(kinds.index) == {("login", "extract_failed"), ("flow:session", "aborted")}


def test_cookies_off_means_no_session(tmp_path):
    """[load] cookies = false: the sid cookie is not kept, so the by-cookie step is 401."""
    code, run_dir, _ = run(write(tmp_path, LOGIN, ['model = "asyncio"'],
                                 load="concurrency = 2\ncookies = false"), tmp_path)
    stats = load_meta(str(run_dir))["mockserver_stats"]
    summary = rows(run_dir)
    assert stats["auth_rejected"] == summary.loc[("asyncio-aiohttp", "by-cookie"),
                                                 "failures"] > 0
    assert stats["auth_ok"] == summary.loc[("asyncio-aiohttp", "profile"), "requests"]


def test_open_model_rate_is_flow_iterations(tmp_path):
    """Open model: the rate is flow iterations started per second (k6's arrival rate)."""
    code, run_dir, err = run(write(tmp_path, LOGIN, ['model = "uvloop"\nengine = "fast"'],
                                   run='duration = "2s"', load="rate = 40\nconcurrency = 20"),
                             tmp_path)
    assert code == 0, err
    summary = rows(run_dir)
    assert 70 <= summary.loc[("uvloop-fast", "flow:session"), "requests"] <= 90
    assert summary.loc[("uvloop-fast", "login"), "requests"] == \
        summary.loc[("uvloop-fast", "flow:session"), "requests"]


ECHO = '''[[data]]
name = "users"
file = "users.csv"
order = "{order}"
[[flows]]
name = "one"
[[flows.steps]]
name = "post"
method = "POST"
path = "/u/{{{{users.id}}}}/{{{{users.name}}}}?w={{{{worker}}}}&u={{{{user}}}}"
headers = {{ "Content-Type" = "application/json", "X-Name" = "{{{{users.id}}}}" }}
body = '{{"user": "{{{{users.name}}}}", "n": {{{{random_int(1, 9)}}}}}}'
'''


def seen(tmp_path: Path, order: str, users: str, models: list[str], requests: int,
         workers: int = 2) -> list:
    server = RawServer()
    try:
        path = write(tmp_path, ECHO.format(order=order), models,
                     run=f"requests = {requests}\nworkers = {workers}",
                     load="concurrency = 4", users=users)
        proc = run_harness("run", str(path), "--target", server.url, "--out",
                           str(tmp_path / "out"), "--quiet", timeout=300)
        assert proc.returncode == 0, proc.stderr
    finally:
        server.stopped = True
        server.sock.close()
    return [r for r in server.requests if r.target.startswith("/u/")]


def test_values_are_escaped_for_where_they_land(tmp_path):
    """A CSV with quoting and UTF-8 names: percent-encoded in the path, a JSON string's
    inside in a JSON body (the template's quotes around it), as they are in a header."""
    got = seen(tmp_path, "per-user", USERS, ['model = "uvloop"\nengine = "fast"',
                                             'model = "sync"'], 40)
    names = {"1": "linus", "2": 'linus, "jr"', "3": "Jürgen"}
    assert len(got) == 80
    for r in got:
        _, _, uid, raw_name = r.target.split("?")[0].split("/")
        assert unquote(raw_name) == names[uid] and "," not in raw_name
        doc = json.loads(r.body)
        assert doc["user"] == names[uid] and 1 <= doc["n"] <= 9
        assert dict(r.headers)["X-Name"] == uid


def test_per_user_rows_stay_with_their_user(tmp_path):
    users = "id,name\n" + "".join(f"{i},n{i}\n" for i in range(100))
    got = seen(tmp_path, "per-user", users, ['model = "thread"'], 200)
    by_user: dict[str, set[str]] = {}
    for r in got:
        user = parse_qs(urlsplit(r.target).query)["u"][0]
        by_user.setdefault(user, set()).add(r.target.split("/")[2])
    # 4 users over 2 workers: global users 0..3, each always its own row
    assert by_user == {str(u): {str(u)} for u in range(4)}


def test_sequential_rows_never_repeat_across_workers_before_wrapping(tmp_path):
    users = "id,name\n" + "".join(f"{i},n{i}\n" for i in range(1000))
    got = seen(tmp_path, "sequential", users, ['model = "asyncio"\nengine = "fast"'], 300)
    ids = [r.target.split("/")[2] for r in got]
    assert len(ids) == 300 and len(set(ids)) == 300     # 300 < 1000 rows: no repeat
    workers = {parse_qs(urlsplit(r.target).query)["w"][0] for r in got}
    assert workers == {"0", "1"}


def test_random_rows_spread(tmp_path):
    users = "id,name\n" + "".join(f"{i},n{i}\n" for i in range(10))
    got = seen(tmp_path, "random", users, ['model = "thread"'], 200, workers=1)
    ids = [int(r.target.split("/")[2]) for r in got]
    assert len(ids) == 200 and all(0 <= i < 10 for i in ids) and len(set(ids)) >= 8


def test_broken_jsonpath_is_refused_before_anything_is_sent(tmp_path):
    body = LOGIN.replace('json = "$.token"', 'json = "$..[?(@"')
    proc = run_harness("run", str(write(tmp_path, body, ['model = "sync"'])), "--out",
                       str(tmp_path / "out"))
    assert proc.returncode == 2 and not (tmp_path / "out").exists()
    assert "journey.toml: [[flows]][0].steps[0].extract.token.json: expected a JSONPath" \
        in proc.stderr and proc.stderr.count("\n") == 1


def test_two_million_rows_reach_every_worker_apart_from_the_control_channel(tmp_path):
    """An 8 MiB file of 2 M short rows (issue 23: it validated, then its Job stalled the
    control channel: the worker was lost, 0 requests, exit 1). Its bytes now go to each
    worker in acknowledged chunks before PREPARE; two workers, sequential order: every
    request carries a row of the file, the last rows' values included."""
    n = 2_000_000
    (tmp_path / "big.csv").write_bytes(b"id\n" + b"".join(b"%d\n" % i for i in range(n)))
    assert (tmp_path / "big.csv").stat().st_size > 8 << 20 - 1
    server = RawServer()
    path = tmp_path / "big.toml"
    path.write_text('[run]\nrequests = 200\nworkers = 2\n[load]\nconcurrency = 2\n'
                    '[[data]]\nname = "big"\nfile = "big.csv"\norder = "random"\n'
                    '[[flows]]\nname = "f"\n[[flows.steps]]\nname = "get"\n'
                    'path = "/row/{{big.id}}"\n[[models]]\nmodel = "asyncio"\nengine = "fast"\n')
    try:
        proc = run_harness("run", str(path), "--target", server.url, "--out",
                           str(tmp_path / "out"), timeout=300)
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr
    assert "[[data]] sent" in proc.stderr
    ids = [int(s.target.rsplit("/", 1)[1]) for s in server.requests]
    assert len(ids) == 200 and all(0 <= i < n for i in ids)
    assert max(ids) > n // 2    # random rows from all of the file, not its first rows only
    meta = load_meta(proc.stdout.strip().splitlines()[-1])
    assert meta["requests_sent"] == 200
