"""`harness run --web`: the live dashboard looked at in headless Chromium while a real run
goes on, /metrics scraped and parsed with prometheus_client's own parser, the Stop button
pressed; and the token rules on loopback (off loopback: tests/netns/test_web_netns.py)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import BIN, run_harness, write_scenario
from tests.devtools import PageWatch, chromium, in_page, open_page

SCENARIO = """
[run]
duration = "3s"
warmup = "0.5s"
[target.mock]
latency = { dist = "lognormal", median_ms = 2, p99_ms = 10 }
faults = { error = { p = 0.03, status = 503 } }
[load]
concurrency = 4
[[requests]]
name = "home"
path = "/"
weight = 3
[[requests]]
name = "blob"
path = "/bytes/100"
[[models]]
model = "thread"
[[models]]
model = "uvloop"
engine = "fast"
"""


def start_run(scenario: Path, out: Path, *web: str) -> tuple[subprocess.Popen[str], str]:
    """`harness run ... --web ...` as a user starts it; returns it and the dashboard URL
    from its `dashboard:` line."""
    proc = subprocess.Popen([str(BIN / "harness"), "run", str(scenario), "--out", str(out),
                             "--web", *web], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("dashboard: http://"):
        proc.kill()
        raise AssertionError(f"no dashboard line: {line!r} {proc.stderr.read()}")
    return proc, line.split()[1]


def fetch(url: str, token: str | None = None, method: str = "GET") -> tuple[int, bytes]:
    req = urllib.request.Request(url, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def scrape(base: str) -> dict[tuple[str, tuple], float]:
    status, body = fetch(base + "metrics")
    assert status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples}


def model_sum(samples: dict, metric: str, model: str) -> float:
    return sum(v for (name, labels), v in samples.items()
               if name == metric and ("model", model) in labels)


def state(base: str) -> dict:
    return json.loads(fetch(base + "api/state")[1])


def wait_for(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_dashboard_metrics_and_stop(tmp_path: Path):
    scenario = write_scenario(tmp_path / "web.toml",
                              SCENARIO + '[thresholds]\nerror_rate = "< 0.01"\n')
    proc, base = start_run(scenario, tmp_path, "127.0.0.1:0")
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(base))
    looked: dict[str, object] = {}

    async def work(call, sid: str) -> None:
        await open_page(call, sid, base)

        async def text(selector: str) -> str:
            got = await call("Runtime.evaluate", sid, returnByValue=True, expression=(
                f"(document.querySelector({json.dumps(selector)}) || {{}}).innerText || ''"))
            return got["result"].get("value", "")

        async def until(selector: str, needle: str, timeout: float = 30.0) -> str:
            deadline = time.monotonic() + timeout
            while needle not in (seen := await text(selector)):
                assert time.monotonic() < deadline, f"{selector} never showed {needle!r}"
                await asyncio.sleep(0.2)
            return seen

        # the first model running with numbers; two looks a second and a half apart
        await until("#models", "running")
        await until(".model[data-model='thread'] .chart", "requests/s")
        first = await text("#models")
        looked["cells"] = (await call("Runtime.evaluate", sid, returnByValue=True, expression=(
            "Array.from(document.querySelectorAll('#models tbody tr')).map(function (tr) {"
            " return {cls: tr.className, cells: Array.from(tr.cells).map(function (td) {"
            " return td.textContent; })}; })")))["result"]["value"]
        looked["errors"] = await until("#errors", "503")
        scraped = [await asyncio.to_thread(scrape, base)]
        await asyncio.sleep(1.5)
        second = await text("#models")
        scraped.append(await asyncio.to_thread(scrape, base))
        looked.update(first=first, second=second, scraped=scraped)
        # the first model done: /metrics holds its final counts
        await until("#models", "done")
        looked["after_thread"] = await asyncio.to_thread(scrape, base)
        # the second model drawing: press Stop, as a person would
        await until(".model[data-model='uvloop-fast'] .chart", "requests/s")
        await call("Runtime.evaluate", sid, expression="document.getElementById('stop').click()")
        looked["final"] = await until("#status", "finished")
        looked["workers"] = await text("#workers")
        looked.update((await call("Runtime.evaluate", sid, returnByValue=True, expression=(
            "({charts: document.querySelectorAll('.model canvas').length,"
            " width: document.documentElement.scrollWidth})")))["result"]["value"])

    async def watched(ws_url: str) -> PageWatch:
        watch = PageWatch()
        await in_page(ws_url, watch, work)
        return watch

    try:
        with chromium() as ws_url:
            watch = asyncio.run(watched(ws_url))
        assert proc.wait(60) == 3, proc.stderr.read()   # stopped: partial
    finally:
        if proc.poll() is None:
            proc.kill()
    run_dir = Path(proc.stdout.read().strip().splitlines()[-1])
    # the page: each model's label, numbers that changed between two looks, one latency
    # chart per model (two canvases each), no console error, nothing outside its origin
    for label in ("thread", "uvloop-fast"):
        assert label in looked["first"] and label in looked["second"]
    assert looked["first"] != looked["second"]
    # no "undefined" (a pending model shows dashes); one number format per column: counts
    # with separators and no decimals, req/s and ms with exactly two decimals
    rows = looked["cells"]
    assert "undefined" not in looked["first"] and "undefined" not in str(rows)
    assert [r["cells"][1] for r in rows] == ["running", "pending"]
    count, fixed2 = re.compile(r"\d{1,3}(,\d{3})*|-"), re.compile(r"\d{1,3}(,\d{3})*\.\d\d|-")
    for r in rows:
        cells = r["cells"]
        assert all(count.fullmatch(c) for c in (cells[2], cells[3], cells[9])), cells
        assert all(fixed2.fullmatch(c) for c in cells[4:9]), cells
    assert rows[1]["cells"][4:9] == ["-"] * 5
    # the crossed threshold (3% errors against < 1%) is marked on the row it concerns
    assert rows[0]["cls"] == "crossed" and rows[0]["cells"][10].startswith("crossed")
    assert rows[1]["cls"] == ""
    # errors by kind name the status
    assert "unexpected_status" in looked["errors"] and "503" in looked["errors"]
    # the page drew itself from /api/state at once, not blank until the first event
    assert any(u.startswith(base + "api/state") for u in watch.requests), watch.requests
    assert looked["charts"] >= 4 and looked["width"] <= 1280   # nothing off the edge
    assert "local-0" in looked["workers"] and "alive" in looked["workers"]
    assert "partial" in looked["final"] and str(run_dir) in looked["final"]
    assert watch.errors == []
    assert watch.requests and all(u.startswith(origin) for u in watch.requests), \
        watch.requests
    # /metrics rose during the run, and once the first model ended it held summary.csv's
    # numbers for it: measured requests (warm-up left out), failures, and sent (warm-up in)
    before, after = looked["scraped"]
    assert model_sum(after, "loadharness_requests_total", "thread") > \
        model_sum(before, "loadharness_requests_total", "thread") > 0
    summary = pd.read_csv(run_dir / "summary.csv")
    final = looked["after_thread"]
    for row in summary[summary["model"] == "thread"].itertuples():
        if row.name == "Aggregated":
            assert model_sum(final, "loadharness_requests_total", "thread") == row.requests
            assert model_sum(final, "loadharness_failures_total", "thread") == row.failures
            assert final[("loadharness_requests_sent_total", (("model", "thread"),))] \
                == row.sent
        else:
            labels = (("model", "thread"), ("name", row.name))
            assert final[("loadharness_requests_total", labels)] == row.requests
            assert final[("loadharness_latency_seconds_count", labels)] == row.requests
    # stopped, yet complete: every model's rows, and every request sent was counted
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["partial"] and meta["interrupted"]
    assert set(summary["model"]) == {"thread", "uvloop-fast"}
    assert meta["requests_sent"] == meta["mockserver_stats"]["requests_total"]
    assert (run_dir / "report.html").exists()


def test_token_rules_on_loopback(tmp_path: Path):
    """With --web-token every path needs the token (Bearer or ?token=); without --web, a
    --web-token is a mistake; a taken port is refused before anything starts."""
    scenario = write_scenario(tmp_path / "short.toml", SCENARIO.replace('"3s"', '"2s"'))
    proc, base = start_run(scenario, tmp_path / "a", "127.0.0.1:0", "--web-token", "s3cret")
    try:
        wait_for(lambda: fetch(base + "api/state", "s3cret")[0] == 200)
        for path in ("", "api/state", "metrics", "assets/charts.js"):
            assert fetch(base + path)[0] == 401
            assert fetch(base + path, "wrong")[0] == 401
            assert fetch(base + path, "s3cret")[0] == 200
        assert fetch(base + "?token=s3cret")[0] == 200
        # a page of another origin cannot stop the run (a form POST needs no preflight)
        req = urllib.request.Request(base + "api/stop", method="POST", headers={
            "Authorization": "Bearer s3cret", "Origin": "http://evil.example"})
        try:
            urllib.request.urlopen(req, timeout=5)
            raise AssertionError("a foreign origin stopped the run")
        except urllib.error.HTTPError as exc:
            assert exc.code == 403
        assert json.loads(fetch(base + "api/state", "s3cret")[1])["stop_requested"] is False
        page = fetch(base + "?token=s3cret")[1].decode()
        assert "/assets/charts.js?token=s3cret" in page   # the page's own requests carry it
        port = urlsplit(base).port
        taken = run_harness("run", str(scenario), "--out", str(tmp_path / "b"),
                            "--web", f"127.0.0.1:{port}")
        assert taken.returncode == 2 and "cannot listen" in taken.stderr
        assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    lone = run_harness("run", str(scenario), "--web-token", "x")
    assert lone.returncode == 2 and "--web-token: given without --web" in lone.stderr


@pytest.mark.parametrize("value", ["nope", "1.2.3.4:99999", "127.0.0.1:x", ":"])
def test_bad_web_values_exit_2(tmp_path: Path, value: str):
    scenario = write_scenario(tmp_path / "s.toml", SCENARIO)
    proc = run_harness("run", str(scenario), "--out", str(tmp_path / "out"), "--web", value)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "--web" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_off_loopback_without_token_is_refused(tmp_path: Path):
    scenario = write_scenario(tmp_path / "s.toml", SCENARIO)
    proc = run_harness("run", str(scenario), "--out", str(tmp_path / "out"),
                       "--web", "0.0.0.0:0")
    assert proc.returncode == 2 and "--web-token" in proc.stderr
    assert not (tmp_path / "out").exists()


def _raw(base: str, head: bytes) -> bytes:
    """One request written byte for byte (a Host or header no HTTP library would send)."""
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(head)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_dns_rebinding_and_raw_headers_are_refused(tmp_path: Path):
    """A page whose name was rebound to 127.0.0.1 sends its own Host (and a matching
    Origin): it may neither read the run nor stop it (403). A raw non-UTF-8 Authorization
    is a 401 (it was a 500 with a traceback in the run's output)."""
    scenario = write_scenario(tmp_path / "s.toml", SCENARIO.replace('"3s"', '"2s"'))
    proc, base = start_run(scenario, tmp_path / "a", "127.0.0.1:0")
    try:
        wait_for(lambda: fetch(base + "api/state")[0] == 200)
        port = urlsplit(base).port
        evil = f"rebind.evil.example:{port}".encode()
        got = _raw(base, b"GET /api/state HTTP/1.1\r\nHost: " + evil +
                   b"\r\nConnection: close\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 403"), got[:200]
        got = _raw(base, b"POST /api/stop HTTP/1.1\r\nHost: " + evil + b"\r\nOrigin: http://"
                   + evil + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 403"), got[:200]
        assert state(base)["stop_requested"] is False
        for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
            got = _raw(base, f"GET /api/state HTTP/1.1\r\nHost: {host}\r\n"
                       "Connection: close\r\n\r\n".encode())
            assert got.startswith(b"HTTP/1.1 200"), (host, got[:200])
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    proc, base = start_run(scenario, tmp_path / "b", "127.0.0.1:0", "--web-token", "s3cret")
    try:
        wait_for(lambda: fetch(base + "api/state", "s3cret")[0] == 200)
        host = urlsplit(base).netloc.encode()
        got = _raw(base, b"GET /api/state HTTP/1.1\r\nHost: " + host +
                   b"\r\nAuthorization: Bearer \xff\xfe\xc3(\r\nConnection: close\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 401"), got[:200]
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert "Traceback" not in err and "Error handling request" not in err, err
