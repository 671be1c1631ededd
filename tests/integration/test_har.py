"""`harness import-har`: a recording becomes a scenario that validates and runs; what a
browser adds (static assets, other hosts, cookies, credentials) is left out; a bad file is
exit 2 with one line, never a traceback."""

from __future__ import annotations

import json
import random
import tomllib

import pytest

from tests.conftest import Mock, load_meta, run_harness
from tests.devtools import chromium, in_page


def har(origin: str) -> dict:
    def entry(t: float, method: str, url: str, mime: str = "application/json",
              headers: list | None = None, body: str | None = None) -> dict:
        req = {"method": method, "url": url, "headers": headers or [], "httpVersion": "HTTP/1.1"}
        if body is not None:
            req["postData"] = {"mimeType": "application/json", "text": body}
        return {"startedDateTime": f"2026-11-26T10:00:{t:06.3f}Z", "time": 20.0,
                "request": req, "response": {"status": 200, "content": {"mimeType": mime}}}
    return {"log": {"version": "1.2", "creator": {"name": "test"}, "entries": [
        entry(0.0, "GET", f"{origin}/", "text/html",
              [{"name": "Accept", "value": "text/html"},
               {"name": "User-Agent", "value": "Mozilla/5.0"},
               {"name": "Cookie", "value": "sid=old"},
               {"name": ":authority", "value": "x"}]),
        entry(0.05, "GET", f"{origin}/static/app.js", "application/javascript"),
        entry(0.06, "GET", "https://cdn.example.test/logo.png", "image/png"),
        entry(1.5, "POST", f"{origin}/auth/login", body='{"user": "linus"}',
              headers=[{"name": "Content-Type", "value": "application/json"},
                       {"name": "Authorization", "value": "Basic c2VjcmV0"}]),
        entry(2.0, "GET", f"{origin}/auth/me?x=1 2&y=\u00e9",
              headers=[{"name": "X-Trace", "value": "abc"}]),
    ]}}


def test_recording_becomes_a_scenario_that_runs(tmp_path, mock: Mock):
    path = tmp_path / "rec.har"
    path.write_text(json.dumps(har(mock.url)))
    out = tmp_path / "rec.toml"
    proc = run_harness("import-har", str(path), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "one flow of 3 steps" in proc.stdout
    doc = tomllib.loads(out.read_text())
    steps = doc["flows"][0]["steps"]
    assert [s["method"] + " " + s["path"] for s in steps] == [
        "GET /", "POST /auth/login", "GET /auth/me?x=1%202&y=%C3%A9"]
    assert steps[0]["headers"] == {"Accept": "text/html"}     # no UA, Cookie, pseudo
    assert steps[1]["headers"] == {"Content-Type": "application/json"}   # no credentials
    assert steps[1]["body"] == '{"user": "linus"}'
    assert steps[0]["think_time"] == "1480ms" and steps[1]["think_time"] == "480ms"
    assert doc["target"]["url"] == mock.url
    assert run_harness("validate", str(out)).returncode == 0
    run = run_harness("run", str(out), "--set", "run.duration=1s", "--set",
                      "flows.0.steps.0.think_time=0s", "--set",
                      "flows.0.steps.1.think_time=0s", "--out", str(tmp_path), "--quiet")
    assert run.returncode == 0, run.stderr
    meta = load_meta(run.stdout.strip().splitlines()[-1])
    assert meta["requests_sent"] == mock.stats()["requests_total"] > 0


def test_a_stripped_credential_is_said(tmp_path, mock: Mock):
    """Authorization is left out by default: stderr names the step that lost it and how to
    keep it; the scenario's first run is short."""
    path = tmp_path / "rec.har"
    path.write_text(json.dumps(har(mock.url)))
    proc = run_harness("import-har", str(path))
    assert proc.returncode == 0, proc.stderr
    tables = tomllib.loads(proc.stdout)
    assert tables["run"]["duration"] == "10s"
    auth_step = [s["name"] for s in tables["flows"][0]["steps"]
                 if s["name"].endswith("POST /auth/login")]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("note: 1 step(s) lost a credential "
                                                   "header (Authorization)")
    assert "--keep-auth" in lines[0] and auth_step and auth_step[0] in lines[0]
    kept = run_harness("import-har", str(path), "--keep-auth")
    assert kept.returncode == 0 and kept.stderr == ""


def test_static_and_auth_are_kept_on_request(tmp_path, mock: Mock):
    path = tmp_path / "rec.har"
    path.write_text(json.dumps(har(mock.url)))
    proc = run_harness("import-har", str(path), "--include-static", "--keep-auth")
    assert proc.returncode == 0, proc.stderr
    steps = tomllib.loads(proc.stdout)["flows"][0]["steps"]
    assert [s["path"] for s in steps][:2] == ["/", "/static/app.js"]   # not the CDN's
    assert steps[2]["headers"]["Authorization"] == "Basic c2VjcmV0"


@pytest.mark.parametrize("content, message", [
    (b"not json", "not a HAR file"),
    (b'{"log": {}}', "log.entries: expected a list"),
    (b'{"log": {"entries": [{"request": {}}]}}', "log.entries[0]: expected request.url"),
    (b'{"log": {"entries": [{"startedDateTime": "2026-01-01T00:00:00Z", "request": '
     b'{"method": "GET", "url": "ftp://x/"}}]}}', "expected an http(s) URL"),
    (b'\xff\xfe', "not UTF-8"),
    # the hostile HARs that gave tracebacks: a port out of range, not a number, a lone
    # surrogate (JSON allows it, TOML cannot hold it)
    (b'{"log": {"entries": [{"startedDateTime": "2026-01-01T00:00:00Z", "request": '
     b'{"method": "GET", "url": "http://h:99999/"}}]}}', "expected a port 1-65535"),
    (b'{"log": {"entries": [{"startedDateTime": "2026-01-01T00:00:00Z", "request": '
     b'{"method": "GET", "url": "http://h:abc/"}}]}}', "expected a port 1-65535"),
    (b'{"log": {"entries": [{"startedDateTime": "2026-01-01T00:00:00Z", "request": '
     b'{"method": "GET", "url": "http://h:1/\\ud800"}}]}}', "not valid Unicode"),
])
def test_bad_recordings_exit_2(tmp_path, content, message):
    path = tmp_path / "bad.har"
    path.write_bytes(content)
    proc = run_harness("import-har", str(path))
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_mangled_recordings_never_trace(tmp_path, mock: Mock):
    """Random damage to a good recording: exit 0 with a scenario that validates, or exit 2
    with one line -- never a traceback."""
    good = har(mock.url)
    rng = random.Random(3)
    for i in range(40):
        doc = json.loads(json.dumps(good))
        entry = rng.choice(doc["log"]["entries"])
        target = rng.choice([entry, entry["request"], entry["response"]])
        key = rng.choice(sorted(target))
        target[key] = rng.choice([None, 7, "", [], {}, "\u0000", "x" * 300, -1.5,
                                  # issue 23's: a non-string body, 120 headers, IPv6
                                  # and credentials in a URL, a body too large to keep
                                  {"text": {"a": 1}}, [{"name": "X-\u00e9", "value": "v"}] * 120,
                                  "http://[::1]:9/x", "http://u:p%40@127.0.0.1:9/x",
                                  {"text": "b" * (1 << 21)}])
        path = tmp_path / f"m{i}.har"
        path.write_text(json.dumps(doc))
        proc = run_harness("import-har", str(path), "-o", str(tmp_path / f"m{i}.toml"))
        assert proc.returncode in (0, 2) and "Traceback" not in proc.stderr, proc.stderr
        if proc.returncode == 0:
            assert run_harness("validate", str(tmp_path / f"m{i}.toml")).returncode == 0


def test_a_recording_made_by_chromium(tmp_path, mock: Mock):
    """Chromium, driven over its DevTools protocol, opens a page of the mockserver and
    logs in with fetch(); its Network events, written out as HAR as devtools' "Save all
    as HAR" does, import into a scenario that runs: the login's token cookie reaches
    /auth/me through the jar, as it did in the browser."""
    import asyncio
    with chromium() as ws_url:
        events = asyncio.run(_record(ws_url, mock.url))
    recording = tmp_path / "chromium.har"
    recording.write_text(json.dumps(_as_har(events)))
    out = tmp_path / "chromium.toml"
    made = run_harness("import-har", str(recording), "-o", str(out))
    assert made.returncode == 0, made.stderr
    steps = tomllib.loads(out.read_text())["flows"][0]["steps"]
    assert [s["path"] for s in steps] == ["/echo", "/auth/login", "/auth/me"]
    assert all(not k.lower().startswith("sec-") for s in steps for k in s.get("headers", {}))
    mock.get_json("/_mock/reset", "POST", b"")
    run = run_harness("run", str(out), "--set", "run.duration=1s", "--out", str(tmp_path),
                      "--quiet", *[a for i in range(2) for a in
                                   ("--set", f"flows.0.steps.{i}.think_time=0s")])
    assert run.returncode == 0, run.stderr
    stats = mock.stats()
    assert stats["auth_ok"] > 0 and stats["auth_rejected"] == 0


async def _record(ws_url: str, origin: str) -> list[dict]:
    """Chromium opens a mockserver page and logs in with fetch(); its Network events."""
    import asyncio
    events: list[dict] = []

    def on_event(method: str, params: dict) -> None:
        if method.startswith("Network."):
            events.append({"method": method, "params": params})

    async def work(call, sid: str) -> None:
        await call("Network.enable", sid)
        await call("Page.enable", sid)
        await call("Page.navigate", sid, url=origin + "/echo")
        await asyncio.sleep(1.0)
        await call("Runtime.evaluate", sid, awaitPromise=True, expression=(
            "fetch('/auth/login', {method: 'POST', headers: {'Content-Type': "
            "'application/json'}, body: JSON.stringify({user: 'ada'})})"
            ".then(r => r.json()).then(() => fetch('/auth/me')).then(r => r.status)"))
        await asyncio.sleep(0.5)

    await in_page(ws_url, on_event, work)
    return events


def _as_har(events: list[dict]) -> dict:
    """DevTools Network events -> HAR 1.2 entries (what devtools' export writes)."""
    from datetime import UTC, datetime
    sent, answered = {}, {}
    for e in events:
        p = e["params"]
        if e["method"] == "Network.requestWillBeSent":
            sent[p["requestId"]] = p
        elif e["method"] == "Network.responseReceived":
            answered[p["requestId"]] = p
    entries = []
    for rid, p in sent.items():
        req = p["request"]
        resp = answered.get(rid, {}).get("response", {})
        entry = {"startedDateTime": datetime.fromtimestamp(p["wallTime"], UTC).isoformat(),
                 "time": 10.0,
                 "request": {"method": req["method"], "url": req["url"],
                             "httpVersion": "HTTP/1.1",
                             "headers": [{"name": k, "value": v}
                                         for k, v in req.get("headers", {}).items()]},
                 "response": {"status": resp.get("status", 0),
                              "content": {"mimeType": resp.get("mimeType", "")}}}
        if req.get("postData"):
            entry["request"]["postData"] = {"mimeType": "application/json",
                                            "text": req["postData"]}
        entries.append(entry)
    return {"log": {"version": "1.2", "creator": {"name": "chromium devtools"},
                    "entries": entries}}


def test_devices_are_refused_without_reading_them_whole(tmp_path):
    """/dev/zero used to be read whole before the size check (all the machine's memory):
    at most the limit is read, then a one-line refusal."""
    for args in (["import-har", "/dev/zero"], ["validate", "/dev/zero"],
                 ["validate", "/dev/urandom"]):
        proc = run_harness(*args, timeout=60)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "larger than" in proc.stderr or "not UTF-8" in proc.stderr, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_one_bad_entry_is_left_out_with_a_line(tmp_path, mock: Mock):
    """Import what can be imported: an entry with a bad port is left out, named by its
    index on stderr; the rest makes a scenario."""
    doc = har(mock.url)
    doc["log"]["entries"].append({"startedDateTime": "2026-01-01T00:00:09Z", "request": {
        "method": "GET", "url": "http://h:99999/x", "headers": []}})
    path = tmp_path / "rec.har"
    path.write_text(json.dumps(doc))
    proc = run_harness("import-har", str(path))
    assert proc.returncode == 0, proc.stderr
    n = len(doc["log"]["entries"]) - 1
    assert f"note: left out: {path}: log.entries[{n}].request.url: expected a port" \
        in proc.stderr
    assert tomllib.loads(proc.stdout)["flows"][0]["steps"]


def test_recorded_text_stays_literal_and_no_secret_leaves(tmp_path):
    """A recording whose header holds `${SECRET_TOKEN}` and whose body holds `{{x}}`:
    replayed with SECRET_TOKEN set, the target sees the recorded text, never the secret
    (the loader filled `${...}` from the environment; a body with `{{` was dropped)."""
    import os

    from tests.rawserver import RawServer
    server = RawServer()
    try:
        doc = {"log": {"entries": [{
            "startedDateTime": "2026-01-01T00:00:00Z", "time": 5,
            "request": {"method": "POST", "url": f"{server.url}/api/${{X}}",
                        "headers": [{"name": "X-Trace", "value": "${SECRET_TOKEN}"},
                                    {"name": "Content-Type", "value": "application/json"}],
                        "postData": {"text": '{"a": "{{x}}", "b": "${SECRET_TOKEN}"}'}},
            "response": {"content": {"mimeType": "text/html"}}}]}}
        path = tmp_path / "rec.har"
        path.write_text(json.dumps(doc))
        out = tmp_path / "rec.toml"
        proc = run_harness("import-har", str(path), "-o", str(out))
        assert proc.returncode == 0, proc.stderr
        assert "note: recorded text kept literal" in proc.stderr
        assert "header X-Trace" in proc.stderr and "body" in proc.stderr
        env = {**os.environ, "SECRET_TOKEN": "hunter2"}
        run = run_harness("run", str(out), "--set", "run.duration=1s", "--set",
                          "flows.0.steps.0.think_time=0s", "--out", str(tmp_path), "--quiet",
                          env=env)
        assert run.returncode == 0, run.stderr
    finally:
        server.stop()
    assert server.requests
    for seen in server.requests:
        assert seen.target == "/api/$%7BX%7D" or seen.target == "/api/${X}"
        assert ("X-Trace", "${SECRET_TOKEN}") in seen.headers
        assert seen.body == b'{"a": "{{x}}", "b": "${SECRET_TOKEN}"}'
        assert b"hunter2" not in seen.body and all("hunter2" not in v for _, v in seen.headers)


def _entry(t: float, url: str, headers: list | None = None, body: object = None) -> dict:
    req: dict = {"method": "POST" if body is not None else "GET", "url": url,
                 "headers": headers or []}
    if body is not None:
        req["postData"] = {"text": body}
    return {"startedDateTime": f"2026-01-01T00:{int(t) // 60:02d}:{t % 60:06.3f}Z",
            "time": 1, "request": req, "response": {"content": {"mimeType": "text/html"}}}


def test_import_what_can_be_imported_one_line_per_thing_left_out(tmp_path):
    """Issue 23's recordings: each left something out silently or refused the whole file.
    Now the rest is imported and each thing left out is one stderr line naming the HAR's
    entry (and header) index."""
    origin = "http://[::1]:8080"      # an IPv6 recording
    many = [_entry(100 + i, f"{origin}/n/{i}") for i in range(120)]   # over 100 steps
    doc = {"log": {"entries": [
        _entry(0, f"{origin}/", [{"name": "X-Ok", "value": "1"},
                                 {"name": "X-Name", "value": "J\u00fcrgen"},
                                 {"name": "Bad Name", "value": "v"},
                                 *({"name": f"X-H{k}", "value": "v"} for k in range(105))]),
        _entry(1, f"{origin}/form", body={"not": "a string"}),
        _entry(2, "http://alice:s%40cret@[::1]:8080/private"),
        _entry(3, f"{origin}/big", body="b" * (2 << 20)),
        *many]}}
    path = tmp_path / "rec.har"
    path.write_text(json.dumps(doc))
    out = tmp_path / "rec.toml"
    proc = run_harness("import-har", str(path), "-o", str(out))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    err = proc.stderr
    assert "log.entries[0].request.headers[1] (\"X-Name\"): its value is not printable ASCII" in err
    assert "log.entries[0].request.headers[2] (\"Bad Name\"): not a header name" in err
    assert "log.entries[0].request.headers[102] (\"X-H99\"): a request holds at most 100" in err
    assert "log.entries[1].request.postData.text: expected a string, got dict" in err
    assert "log.entries[3].request.postData.text: over 1 MiB" in err
    assert "user:password in the URL" in err and "s@cret" not in err
    assert "a flow holds at most 100 steps" in err
    scenario = tomllib.loads(out.read_text())
    assert scenario["target"]["url"] == origin
    steps = scenario["flows"][0]["steps"]
    assert len(steps) == 100
    assert steps[0]["headers"]["X-Ok"] == "1" and len(steps[0]["headers"]) == 100
    assert all("Authorization" not in s.get("headers", {}) for s in steps)
    assert run_harness("validate", str(out)).returncode == 0

    kept = run_harness("import-har", str(path), "--keep-auth")
    private = next(s for s in tomllib.loads(kept.stdout)["flows"][0]["steps"]
                   if s["path"] == "/private")
    import base64
    assert private["headers"]["Authorization"] == \
        "Basic " + base64.b64encode(b"alice:s@cret").decode()
