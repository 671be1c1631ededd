"""Numbers you can trust against ordinary servers: servers that close kept-alive
connections (nginx's keepalive_requests, gunicorn's sync worker, HTTP/1.0), and every
model putting the same request on the wire. Each run is checked against what the server
itself saw: no false errors, and what we say we sent is what it received."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from harness.transports.wire import USER_AGENT
from tests.conftest import load_meta, run_harness
from tests.rawserver import RawServer

OUR_MODELS = [
    ('model = "sync"', "sync"),
    ('model = "thread"', "thread"),
    ('model = "asyncio"', "asyncio-aiohttp"),
    ('model = "asyncio"\nengine = "fast"', "asyncio-fast"),
    ('model = "uvloop"', "uvloop-aiohttp"),
    ('model = "uvloop"\nengine = "fast"', "uvloop-fast"),
    ('model = "process"\nprocesses = 2\nsub_model = "thread"', "process-threadx2"),
    ('model = "process"\nprocesses = 2\nsub_model = "asyncio"', "process-asynciox2"),
]
LOCUST_MODELS = [('model = "locust"', "locust"), ('model = "locust-http"', "locust-http")]
REQUESTS = ('[[requests]]\nname = "page"\npath = "/page?q=1"\nheaders = { "X-Test" = "yes" }\n'
            '[[requests]]\nname = "form"\nmethod = "POST"\npath = "/form"\n'
            'body = "a=1&b=2"\n'
            'headers = { "Content-Type" = "application/x-www-form-urlencoded" }\n')
# a POST whose scenario header replaces a default (Accept) and adds two of its own
ORDERED = ('[[requests]]\nname = "page"\npath = "/page?q=1"\nheaders = { "X-Test" = "yes" }\n'
           '[[requests]]\nname = "form"\nmethod = "POST"\npath = "/form"\n'
           'body = "a=1&b=2"\nheaders = { "X-First" = "1", "Accept" = "text/html", '
           '"Content-Type" = "application/x-www-form-urlencoded" }\n')


def every_model_scenario(tmp_path: Path, models: list[tuple[str, str]], per_model: int,
                         requests: str = REQUESTS, concurrency: int = 4) -> Path:
    path = tmp_path / "all.toml"
    path.write_text(f"[run]\nrequests = {per_model}\nworkers = 1\n"
                    f"[load]\nconcurrency = {concurrency}\n{requests}"
                    + "".join(f"[[models]]\n{m}\n" for m, _ in models))
    return path


def run_all(tmp_path: Path, url: str, models: list[tuple[str, str]], per_model: int,
            **kwargs: object) -> tuple[Path, dict, pd.DataFrame]:
    path = every_model_scenario(tmp_path, models, per_model, **kwargs)
    proc = run_harness("run", str(path), "--target", url, "--out", str(tmp_path), "--quiet",
                       timeout=300)
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    return run_dir, load_meta(str(run_dir)), pd.read_csv(run_dir / "summary.csv")


@pytest.mark.parametrize("behaviour", [{"close_after": 3}, {"http10": True}],
                         ids=["closes-after-3", "http10-close"])
def test_no_false_errors_when_the_server_closes(tmp_path, behaviour: dict):
    """Every model against a server that closes after 3 responses (saying so) and one that
    answers HTTP/1.0 without keep-alive: zero errors, and sent == what the server read."""
    models = OUR_MODELS + LOCUST_MODELS
    server = RawServer(**behaviour)
    try:
        run_dir, meta, summary = run_all(tmp_path, server.url, models, per_model=60)
    finally:
        server.stop()
    agg = summary[summary["name"] == "Aggregated"].set_index("model")
    assert agg["failures"].to_dict() == {label: 0 for _, label in models}
    assert (agg["requests"] == 60).all(), agg["requests"].to_dict()
    assert meta["requests_sent"] == len(server.requests) == 60 * len(models)
    assert server.connections >= len(server.requests) // (1 if server.http10 else 3)


def header_sets(server: RawServer, meta: dict, labels: list[str]) -> dict[str, dict]:
    """Each model's requests, as {method: sorted (lower name, value) pairs}: the models ran
    one after another, so the server's log splits by each model's sent count."""
    out, at = {}, 0
    for label in labels:
        n = meta["models"][label]["requests_sent"]
        seen = server.requests[at:at + n]
        at += n
        out[label] = {s.method: sorted((k.lower(), v) for k, v in s.headers) for s in seen}
    return out


def test_every_model_puts_the_same_request_on_the_wire(tmp_path):
    """The documented header set (README, wire.py), byte for byte and in one order: a GET
    with a scenario header and a POST with a body whose scenario header replaces a default
    in its place, captured at a raw socket."""
    server = RawServer()
    try:
        _, meta, _ = run_all(tmp_path, server.url, OUR_MODELS, per_model=20,
                             requests=ORDERED)
    finally:
        server.stop()
    host = f"127.0.0.1:{server.port}"
    expected = {
        "GET": [("Host", host), ("User-Agent", USER_AGENT), ("Accept", "*/*"),
                ("Accept-Encoding", "identity"), ("X-Test", "yes")],
        "POST": [("Host", host), ("User-Agent", USER_AGENT), ("Accept", "text/html"),
                 ("Accept-Encoding", "identity"), ("X-First", "1"),
                 ("Content-Type", "application/x-www-form-urlencoded"),
                 ("Content-Length", "7")],
    }
    at = 0
    for label in [label for _, label in OUR_MODELS]:
        n = meta["models"][label]["requests_sent"]
        seen = server.requests[at:at + n]
        at += n
        heads = {(s.method, tuple(s.headers)) for s in seen}
        assert heads == {(m, tuple(h)) for m, h in expected.items()}, label
    bodies = {s.body for s in server.requests if s.method == "POST"}
    targets = {s.target for s in server.requests}
    assert bodies == {b"a=1&b=2"} and targets == {"/page?q=1", "/form"}


def test_one_url_rule_for_every_model(tmp_path):
    """A path prefix is joined with exactly one slash in every model, Locust's included,
    given as [target].url or --target; a query, a fragment or credentials on the target
    are refused before anything is sent (they were joined differently, or dropped)."""
    server = RawServer()
    models = OUR_MODELS + LOCUST_MODELS
    try:
        body = '[[requests]]\nname = "items"\npath = "/items?q=1"\n'
        scenario = every_model_scenario(tmp_path, models, per_model=3, requests=body,
                                        concurrency=1)
        text = scenario.read_text()
        scenario.write_text(f'[target]\nurl = "{server.url}/api/v1/"\n' + text)
        proc = run_harness("run", str(scenario), "--out", str(tmp_path), "--quiet",
                           timeout=300)
        assert proc.returncode == 0, proc.stderr
        first = len(server.requests)
        proc = run_harness("run", str(scenario), "--target", f"{server.url}/api/v1//",
                           "--out", str(tmp_path), "--quiet", timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert len(server.requests) == 2 * first == 2 * 3 * len(models)
        assert {s.target for s in server.requests} == {"/api/v1/items?q=1"}
        bad = (f"{server.url}?x=1", f"{server.url}/p#frag", f"http://user:pa%40ss@127.0.0.1:"
               f"{server.port}", f"{server.url}/a b", "", f"http://127.0.0.1:{server.port}0000")
        for url in bad:
            for args in (["--target", url], ["--set", f"target.url={url}"]):
                proc = run_harness("run", str(scenario), *args, "--out", str(tmp_path),
                                   "--quiet")
                assert proc.returncode == 2, (url, proc.stderr)
                assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
                assert "pa%40ss" not in proc.stderr and "Traceback" not in proc.stderr
        assert len(server.requests) == 2 * first
    finally:
        server.stop()


def test_non_ascii_header_values_are_refused(tmp_path):
    """http.client sent `Zo\\xeb`, aiohttp `Zo\\xc3\\xab` for the same value: one byte string
    for every model means ASCII only, refused at validation with the key named."""
    path = tmp_path / "s.toml"
    path.write_text('[run]\nrequests = 1\n[[requests]]\npath = "/"\n'
                    'headers = { "X-Token" = "tok-Zo\u00eb" }\n[[models]]\nmodel = "thread"\n')
    proc = run_harness("validate", str(path))
    assert proc.returncode == 2
    assert "headers.X-Token" in proc.stderr and "ASCII" in proc.stderr


# What Locust's clients add to our header set, as the README says (Locust has no switch).
LOCUST_EXTRAS = {
    "locust": {"GET": [], "POST": []},              # a body without Content-Type: see below
    "locust-http": {"GET": [("connection", "keep-alive")],
                    "POST": [("connection", "keep-alive")]},
}


def test_locust_sends_our_headers_as_far_as_it_allows(tmp_path):
    """Locust's peers get the same header set passed in; they differ only where the README
    says: requests (locust-http) adds Connection: keep-alive, and geventhttpclient
    (locust) a Content-Type: application/octet-stream to a body that has none."""
    server = RawServer()
    plain_post = REQUESTS.replace(
        'headers = { "Content-Type" = "application/x-www-form-urlencoded" }\n', "")
    try:
        _, meta, _ = run_all(tmp_path, server.url, LOCUST_MODELS, per_model=16,
                             requests=plain_post, concurrency=1)
    finally:
        server.stop()
    sets = header_sets(server, meta, [label for _, label in LOCUST_MODELS])
    host = f"127.0.0.1:{server.port}"
    ours = [("host", host), ("user-agent", USER_AGENT), ("accept", "*/*"),
            ("accept-encoding", "identity")]
    for label, seen in sets.items():
        assert set(seen) == {"GET", "POST"}, label
        extras = LOCUST_EXTRAS[label]
        assert seen["GET"] == sorted(ours + [("x-test", "yes")] + extras["GET"]), label
        post = ours + [("content-length", "7")] + extras["POST"]
        if label == "locust":
            post.append(("content-type", "application/octet-stream"))
        assert seen["POST"] == sorted(post), label


def test_redirects_are_answers_in_every_model(tmp_path):
    """A 301 is one exchange in every model, Locust's peers included: requests_sent equals
    what the server read (Locust used to follow: 4,652 sent vs 5,576 nginx lines) and the
    row records the 301, not the last hop's 200."""
    server = RawServer(redirect="/final")
    models = OUR_MODELS + LOCUST_MODELS
    body = '[[requests]]\nname = "start"\npath = "/start"\n'
    try:
        run_dir, meta, summary = run_all(tmp_path, server.url, models, per_model=5,
                                         requests=body, concurrency=1)
    finally:
        server.stop()
    assert {s.target for s in server.requests} == {"/start"}
    assert meta["requests_sent"] == len(server.requests) == 5 * len(models)
    statuses = pd.read_csv(run_dir / "statuses.csv")
    assert set(statuses["status"]) == {301}
    assert statuses.groupby("model")["count"].sum().to_dict() == \
        {label: 5 for _, label in models}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gunicorn_closing_after_each_response(tmp_path):
    """gunicorn's sync worker closes after every response (what first showed the fast
    engine's false resets: 10 of 20). Every model: 0 errors, sent == gunicorn's log."""
    if shutil.which("gunicorn", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("gunicorn is not installed (the dev extra installs it)")
    app = tmp_path / "wsgiapp.py"
    app.write_text("def app(environ, start_response):\n"
                   "    start_response('200 OK', [('Content-Length', '2')])\n"
                   "    return [b'ok']\n")
    log = tmp_path / "access.log"
    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "--chdir",
                             str(tmp_path), "-b", f"127.0.0.1:{port}", "-w", "2",
                             "--access-logfile", str(log), "wsgiapp:app"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)
        models = OUR_MODELS + LOCUST_MODELS
        _, meta, summary = run_all(tmp_path, f"http://127.0.0.1:{port}", models, per_model=20)
    finally:
        proc.terminate()
        proc.wait(10)
    agg = summary[summary["name"] == "Aggregated"]
    assert agg["failures"].sum() == 0, agg[["model", "failures"]]
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert meta["requests_sent"] == len(lines) == 20 * len(models)
