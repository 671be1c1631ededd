"""HTTP/2 end to end: every model that speaks it against the mockserver (h2c and TLS with
ALPN), what each puts on the wire (a raw h2 server records the decoded header lists),
GOAWAY (the mock's admin sends one mid-run; a raw server leaves a stream above its last
id), `http = "auto"`, and the scenario's refusals. nginx's own counts are in
test_http2_nginx.py."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import load_meta, run_harness, start_mockserver, write_scenario
from tests.h2peer import H2Peer

MODELS = """
[[models]]
model = "sync"
[[models]]
model = "thread"
[[models]]
model = "asyncio"
engine = "fast"
[[models]]
model = "uvloop"
engine = "fast"
[[models]]
model = "process"
sub_model = "thread"
processes = 2
"""
FAST = """
[[models]]
model = "asyncio"
engine = "fast"
[[models]]
model = "uvloop"
engine = "fast"
"""


def _run(tmp: Path, body: str, *args: str, timeout: float = 240) -> tuple[str, dict]:
    path = write_scenario(tmp / "h2.toml", body)
    proc = run_harness("run", str(path), "--out", str(tmp / "out"), "--quiet", *args,
                       timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    run_dir = proc.stdout.strip().splitlines()[-1]
    return run_dir, load_meta(run_dir)


def _summary(run_dir: str) -> list[dict[str, str]]:
    import csv
    with open(Path(run_dir) / "summary.csv") as f:
        return list(csv.DictReader(f))


def test_every_http2_model_reconciles_with_the_mock_over_h2c(tmp_path):
    """The quickstart's shape over h2c against the embedded mock: every request each model
    sent is one the mock counted, over HTTP/2, and results say so per model."""
    run_dir, meta = _run(tmp_path, f"""
[run]
requests = 1200
[target]
http = "2"
[load]
concurrency = 8
[[requests]]
name = "home"
path = "/"
[[requests]]
name = "item"
method = "POST"
path = "/echo"
body = "x=1"
{MODELS}""")
    stats = meta["mockserver_stats"]
    assert stats["by_protocol"] == {"HTTP/1.1": 0, "HTTP/2": stats["requests_total"]}
    assert meta["requests_sent"] == stats["requests_total"] == 5 * 1200
    for label, model in meta["models"].items():
        assert model["protocol"] == "HTTP/2" and model["requests_sent"] == 1200, label
    assert {r["protocol"] for r in _summary(run_dir)} == {"HTTP/2"}
    assert all(r["failures"] == "0" for r in _summary(run_dir))
    # the fast engine counts its connections and streams: one user a connection here
    fast = meta["models"]["uvloop-fast"]["h2"]
    assert fast["streams"] == 1200 and fast["connections"] == 8 and fast["retried"] == 0


def test_streams_per_connection_multiplexes_users(tmp_path):
    """streams_per_connection = 10: 20 users on 2 connections, as the mock counts them."""
    _, meta = _run(tmp_path, f"""
[run]
duration = "2s"
[target]
http = "2"
[load]
concurrency = 20
streams_per_connection = 10
[[requests]]
name = "home"
path = "/"
{FAST}""")
    stats = meta["mockserver_stats"]
    assert meta["requests_sent"] == stats["requests_total"] == stats["by_protocol"]["HTTP/2"]
    for label in ("asyncio-fast", "uvloop-fast"):
        h2 = meta["models"][label]["h2"]
        assert h2["connections"] == 2, (label, h2)
        assert h2["streams"] == meta["models"][label]["requests_sent"] > 100
    assert stats["h2"]["connections"] == 4


def test_tls_with_alpn_and_auto(tmp_path):
    """Over TLS the embedded mock offers h2 and http/1.1: http = "2" speaks h2 in every
    model (handshakes counted as over HTTP/1.1), and "auto" picks h2 there; against a
    mock that offers HTTP/1.1 only, "auto" speaks HTTP/1.1."""
    run_dir, meta = _run(tmp_path, f"""
[run]
requests = 300
[target]
http = "2"
[target.mock]
tls = true
[[requests]]
name = "home"
path = "/"
{MODELS}""")
    stats = meta["mockserver_stats"]
    assert meta["requests_sent"] == stats["by_protocol"]["HTTP/2"] == 5 * 300
    ours = sum(m["tls"]["handshakes"] for m in meta["models"].values())
    # every HTTP/2 connection is one our models shook hands for; the stats poll's own
    # (HTTP/1.1) is the one more TLS handshake the mock saw
    assert stats["h2"]["connections"] == ours == stats["tls_handshakes"] - 1
    for label, model in meta["models"].items():
        assert model["protocol"] == "HTTP/2", label
        assert model["tls"]["handshakes"] >= 1, label

    auto = f"""
[run]
requests = 200
[target]
http = "auto"
{{target}}
[[requests]]
name = "home"
path = "/"
{FAST}"""
    _, meta = _run(tmp_path, auto.format(target="[target.mock]\ntls = true"))
    assert {m["protocol"] for m in meta["models"].values()} == {"HTTP/2"}
    assert meta["mockserver_stats"]["by_protocol"]["HTTP/2"] == 400

    only1 = start_mockserver("--tls-self-signed", "--no-http2")
    try:
        _, meta = _run(tmp_path, auto.format(target="[target.tls]\nverify = false"),
                       "--target", only1.url)
        stats = only1.stats()
    finally:
        only1.stop()
    assert {m["protocol"] for m in meta["models"].values()} == {"HTTP/1.1"}
    assert stats["by_protocol"] == {"HTTP/1.1": 400, "HTTP/2": 0}


def test_every_model_puts_the_same_header_list_on_the_wire(tmp_path):
    """A raw h2 server records each request's decoded header list: the same for every
    model (pseudo-headers in one order, then the HTTP/1.1 header set lower-cased, no Host,
    no connection-specific header), and the same set as over HTTP/1.1."""
    peer = H2Peer()
    try:
        _run(tmp_path, f"""
[run]
requests = 4
[target]
http = "2"
[load]
concurrency = 1
[[requests]]
name = "post"
method = "POST"
path = "/submit?q=1"
body = "a=1"
headers = {{ "X-Trace" = "t1", "Accept" = "application/json" }}
{MODELS}""", "--target", peer.url)
    finally:
        peer.stop()
    seen = {tuple(h) for h in peer.requests}
    assert len(peer.requests) == 5 * 4 and len(seen) == 1, seen
    headers = list(seen)[0]
    authority = f"127.0.0.1:{peer.port}".encode()
    assert headers == (
        (b":method", b"POST"), (b":authority", authority), (b":scheme", b"http"),
        (b":path", b"/submit?q=1"), (b"user-agent", headers[4][1]),
        (b"accept", b"application/json"), (b"accept-encoding", b"identity"),
        (b"x-trace", b"t1"), (b"content-length", b"3"))
    assert headers[4][1].startswith(b"loadharness/")


def test_a_stream_above_goaways_last_id_is_sent_again_once(tmp_path):
    """Two users share a connection; the server answers stream 1, GOAWAYs with last id 1
    and leaves stream 3 unprocessed: it is sent again on a new connection, counted as
    retried, and the server processed exactly what was sent."""
    peer = H2Peer(goaway_when=2)
    try:
        _, meta = _run(tmp_path, """
[run]
requests = 2
[target]
http = "2"
[load]
concurrency = 2
streams_per_connection = 2
[[requests]]
name = "home"
path = "/"
[[models]]
model = "uvloop"
engine = "fast"
""", "--target", peer.url)
    finally:
        peer.stop()
    model = meta["models"]["uvloop-fast"]
    assert model["errors"] == [] and model["requests_sent"] == 2 == len(peer.requests)
    assert peer.refused == 1 and model["h2"]["retried"] == 1
    assert model["h2"]["connections"] == 2 == peer.connections


def test_goaway_mid_run_loses_nothing(tmp_path):
    """The mock's admin sends every HTTP/2 connection a GOAWAY, again and again during the
    run: each model reconnects; sent == counted, no failure."""
    mock = start_mockserver("--seed", "3")
    stop = threading.Event()
    sent_goaways: list[int] = []

    def goaways() -> None:
        while not stop.wait(0.4):
            req = urllib.request.Request(mock.url + "/_mock/goaway", method="POST")
            with urllib.request.urlopen(req, timeout=5) as resp:
                sent_goaways.append(json.loads(resp.read())["connections"])

    thread = threading.Thread(target=goaways, daemon=True)
    try:
        thread.start()
        run_dir, meta = _run(tmp_path, f"""
[run]
duration = "3s"
[target]
http = "2"
[load]
concurrency = 10
[[requests]]
name = "home"
path = "/"
{MODELS}""", "--target", mock.url)
        stop.set()
        thread.join(10)
        stats = mock.stats()
    finally:
        stop.set()
        mock.stop()
    # (the run resets the mock's counters as it starts: GOAWAYs sent before are not in them)
    assert sum(sent_goaways) >= stats["h2"]["goaways"] > 10
    assert meta["requests_sent"] == stats["requests_total"] == stats["by_protocol"]["HTTP/2"]
    assert all(r["failures"] == "0" for r in _summary(run_dir)), _summary(run_dir)
    for label in ("asyncio-fast", "uvloop-fast"):   # GOAWAY'd streams sent again, counted
        h2 = meta["models"][label]["h2"]
        assert h2["connections"] > 10 and \
            h2["streams"] == meta["models"][label]["requests_sent"] + h2["retried"], h2


@pytest.mark.parametrize(("body", "key", "said"), [
    ('[target]\nhttp = "3"', "[target].http", 'expected one of "1.1", "2", "auto"'),
    ('[target]\nhttp = 2', "[target].http", "got 2"),
    ('[target]\nhttp = "2"\n[load]\nstreams_per_connection = 0',
     "[load].streams_per_connection", "1"),
    ('[target]\nhttp = "2"\n[load]\nstreams_per_connection = 1001',
     "[load].streams_per_connection", "1000"),
    ("[load]\nstreams_per_connection = 4", "[load].streams_per_connection",
     'set [target].http = "2"'),
])
def test_bad_http2_settings_are_refused_in_one_line(tmp_path, body, key, said):
    path = write_scenario(tmp_path / "bad.toml", f"""
[run]
duration = "1s"
{body}
[[requests]]
name = "home"
path = "/"
[[models]]
model = "uvloop"
engine = "fast"
""")
    proc = run_harness("validate", str(path))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert key in proc.stderr and said in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("model", "why"), [
    ('model = "asyncio"', "aiohttp's client has no HTTP/2"),
    ('model = "locust"', "Locust's clients speak HTTP/1.1 only"),
    ('model = "process"\nsub_model = "asyncio"', "asyncio processes send through aiohttp"),
])
def test_a_model_that_cannot_speak_http2_is_named(tmp_path, model, why):
    path = write_scenario(tmp_path / "bad.toml", f"""
[run]
duration = "1s"
[target]
http = "2"
[[requests]]
name = "home"
path = "/"
[[models]]
{model}
""")
    proc = run_harness("run", str(path), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "[[models]][0].model" in proc.stderr and why in proc.stderr
    assert 'needs one of sync, thread, asyncio (engine "fast")' in proc.stderr
    assert not (tmp_path / "out").exists()   # nothing half-done


def test_threads_cannot_share_an_httpx_connection(tmp_path):
    path = write_scenario(tmp_path / "bad.toml", """
[run]
duration = "1s"
[target]
http = "2"
[load]
streams_per_connection = 4
[[requests]]
name = "home"
path = "/"
[[models]]
model = "thread"
""")
    proc = run_harness("validate", str(path))
    assert proc.returncode == 2 and "[load].streams_per_connection" in proc.stderr
    assert "out of order" in proc.stderr


def test_faults_over_http2_are_named_alike_in_every_model(tmp_path):
    """The mock's faults over h2c: a reset is the stream's (RST_STREAM INTERNAL_ERROR:
    h2_reset, its code in errors.csv's detail), a hang past the timeout is `timeout`, a 503
    is unexpected_status:503 -- the same in every model, as many as the mock drew."""
    run_dir, meta = _run(tmp_path, f"""
[run]
requests = 400
timeout = "1s"
[target]
http = "2"
[target.mock.faults]
reset = 0.05
error = {{ p = 0.05, status = 503 }}
hang = {{ p = 0.01, ms = 3000 }}
[load]
concurrency = 4
[[requests]]
name = "home"
path = "/"
{MODELS}""", timeout=300)
    import csv
    with open(Path(run_dir) / "errors.csv") as f:
        rows = list(csv.DictReader(f))
    kinds: dict[str, dict[tuple[str, str, str], int]] = {}
    for r in rows:
        key = (r["kind"], r["status"], r["detail"])
        by = kinds.setdefault(r["model"], {})
        by[key] = by.get(key, 0) + int(r["count"])
    assert set(kinds) == set(meta["models"]), kinds
    for label, by in kinds.items():
        assert set(by) == {("h2_reset", "0", "INTERNAL_ERROR"),
                           ("unexpected_status", "503", ""), ("timeout", "0", "")}, label
    faults = meta["mockserver_stats"]["faults"]
    total = lambda kind: sum(by.get(kind, 0) for by in kinds.values())  # noqa: E731
    assert total(("h2_reset", "0", "INTERNAL_ERROR")) == faults["reset"]
    assert total(("unexpected_status", "503", "")) == faults["error"]
    assert total(("timeout", "0", "")) == faults["hang"]
    assert meta["requests_sent"] == meta["mockserver_stats"]["requests_total"]


def test_the_login_journey_over_http2(tmp_path):
    """The shipped journey as a user runs it, over HTTP/2 (--set target.http=2): every
    token and session cookie its models extracted reached the mock intact, over h2."""
    from tests.conftest import ROOT
    proc = run_harness("run", str(ROOT / "scenarios" / "journey-login.toml"), "--set",
                       'target.http="2"', "--set", 'run.duration="1s"', "--set",
                       'run.warmup="0s"', "--out", str(tmp_path / "out"), "--quiet",
                       timeout=240)
    assert proc.returncode == 0, proc.stderr
    run_dir = proc.stdout.strip().splitlines()[-1]
    meta = load_meta(run_dir)
    stats = meta["mockserver_stats"]
    rows = {(r["model"], r["name"]): r for r in _summary(run_dir)}
    me = sum(int(rows[(m, n)]["requests"]) for m in meta["models"]
             for n in ("profile", "by-cookie"))
    assert me > 20 and stats["auth_ok"] == me and stats["auth_rejected"] == 0
    assert meta["requests_sent"] == stats["requests_total"] == stats["by_protocol"]["HTTP/2"]
    assert all(r["failures"] == "0" for r in rows.values())
    assert {m["protocol"] for m in meta["models"].values()} == {"HTTP/2"}


@pytest.mark.parametrize("handshake", ["per-request", "resume"])
def test_handshake_modes_over_http2(tmp_path, handshake):
    """per-request: a TLS connection (and handshake) per request; resume: the same, each
    resuming its user's session -- over HTTP/2, as the mock counts them."""
    _, meta = _run(tmp_path, f"""
[run]
requests = 60
[target]
http = "2"
handshake = "{handshake}"
[target.mock]
tls = true
[load]
concurrency = 3
[[requests]]
name = "home"
path = "/"
{FAST}
[[models]]
model = "thread"
""")
    stats = meta["mockserver_stats"]
    assert stats["by_protocol"]["HTTP/2"] == meta["requests_sent"] == 3 * 60
    assert stats["h2"]["connections"] == 3 * 60 == stats["tls_handshakes"] - 1
    for label, model in meta["models"].items():
        assert model["tls"]["handshakes"] == 60, label
        if handshake == "resume":
            assert model["tls"]["resumed"] >= 60 - 3, (label, model["tls"])
        else:
            assert model["tls"]["resumed"] == 0, label


@pytest.mark.parametrize(("fault", "kinds"), [
    ("endless_body", {"timeout"}),
    ("ping_flood", {"timeout"}),
    ("continuation_flood", {"malformed_response"}),
    ("huge_headers", {"malformed_response"}),
    ("silent", {"timeout"}),
])
def test_a_hostile_http2_target_never_takes_the_generator_down(tmp_path, fault, kinds):
    """A server that misbehaves over HTTP/2 from its first answer on: every model's run
    ends in its time, each request with a bounded kind, its load processes' memory
    bounded (an endless body is counted and dropped, never held)."""
    peer = H2Peer(fault=fault)
    started = time.monotonic()
    try:
        path = write_scenario(tmp_path / "hostile.toml", f"""
[run]
duration = "1.5s"
timeout = "0.5s"
[target]
http = "2"
[load]
concurrency = 2
[[requests]]
name = "home"
path = "/"
{FAST}
[[models]]
model = "thread"
""")
        proc = run_harness("run", str(path), "--target", peer.url, "--out",
                           str(tmp_path / "out"), "--quiet", timeout=120)
    finally:
        peer.stop()
    assert proc.returncode == 1, proc.stderr   # no request succeeded: the run failed
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - started < 60
    run_dir = proc.stdout.strip().splitlines()[-1]
    meta = load_meta(run_dir)
    import csv
    with open(Path(run_dir) / "errors.csv") as f:
        rows = list(csv.DictReader(f))
    for label, model in meta["models"].items():
        got = {r["kind"] for r in rows if r["model"] == label}
        assert got == kinds, (label, got)
        assert model["rss_peak_bytes"] < 400 << 20, (label, model["rss_peak_bytes"])


def test_streams_beyond_the_servers_cap_wait_for_a_stream(tmp_path):
    """200 users a connection against the mock's SETTINGS_MAX_CONCURRENT_STREAMS of 128:
    the requests past the cap wait for a stream (inside their latency), never open one
    the server would refuse -- no failure, no offender, one connection. (CI beside a CPU
    hog saw the mock count 128 fewer than were sent: the users' first burst went out
    before the server's SETTINGS, past its cap; a connection now waits for them.)"""
    run_dir, meta = _run(tmp_path, """
[run]
requests = 3000
[target]
http = "2"
[target.mock]
latency = { dist = "fixed", ms = 20 }
[load]
concurrency = 200
streams_per_connection = 200
[[requests]]
name = "home"
path = "/"
[[models]]
model = "uvloop"
engine = "fast"
""")
    stats = meta["mockserver_stats"]
    model = meta["models"]["uvloop-fast"]
    assert model["errors"] == [] and model["requests_sent"] == 3000 == stats["requests_total"]
    assert stats["h2"]["offenders"] == {} and model["h2"]["connections"] == 1
    assert all(r["failures"] == "0" for r in _summary(run_dir))


def test_the_open_model_over_http2(tmp_path):
    """The open model's one timer over h2 streams (10 users a connection): the schedule's
    sends, every one counted by the mock, latency from the intended send."""
    run_dir, meta = _run(tmp_path, """
[run]
duration = "2s"
[target]
http = "2"
[load]
mode = "open"
rate = 400
concurrency = 20
streams_per_connection = 10
[[requests]]
name = "home"
path = "/"
[[models]]
model = "uvloop"
engine = "fast"
""")
    stats = meta["mockserver_stats"]
    assert meta["requests_sent"] == stats["requests_total"] == stats["by_protocol"]["HTTP/2"]
    rows = {r["name"]: r for r in _summary(run_dir)}
    assert 0.9 * 400 < float(rows["Aggregated"]["rps"]) < 1.1 * 400
    assert rows["Aggregated"]["failures"] == "0"
    # connections open as the schedule first needs a user of theirs: at 400/s of ~1 ms
    # answers the first ten users' connection may be the only one
    assert 1 <= meta["models"]["uvloop-fast"]["h2"]["connections"] <= 2
