"""HTTP/2 against nginx with `http2`, TLS with ALPN and h2c on a plain listener, nginx's
access log the outside witness: every model that speaks HTTP/2 sends exactly the requests
nginx logs, `$server_protocol` is HTTP/2.0 on every line, and with streams_per_connection
the connections nginx logged (`$connection`, `$connection_requests`) are the ones our
fast engine says it opened -- fewer than its users. nginx ends a connection after
keepalive_requests (1,000) with a GOAWAY: the streams it did not take are sent again and
still each logged once."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import trustme

from tests.conftest import load_meta, run_harness, write_scenario
from tests.integration.test_http2 import MODELS


def _nginx() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                     else None)


pytestmark = pytest.mark.skipif(_nginx() is None, reason="nginx is not installed (apt-get "
                                                         "install nginx to run these tests)")



def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def nginx(tmp_path_factory):
    work = tmp_path_factory.mktemp("nginx-h2")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(work / "ca.pem"))
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(work / "server.key"))
    with open(work / "server.pem", "wb") as f:
        for blob in cert.cert_chain_pems:
            f.write(blob.bytes())
    tls_port, plain_port = _port(), _port()
    (work / "nginx.conf").write_text(f"""
worker_processes 1; daemon off; pid {work}/nginx.pid; error_log {work}/error.log;
events {{ worker_connections 4096; }}
http {{
  log_format h2 '$server_protocol $connection $connection_requests $status';
  access_log {work}/access.log h2;
  client_body_temp_path {work}; proxy_temp_path {work}; fastcgi_temp_path {work};
  uwsgi_temp_path {work}; scgi_temp_path {work};
  server {{ listen 127.0.0.1:{tls_port} ssl http2; ssl_certificate {work}/server.pem;
    ssl_certificate_key {work}/server.key; location / {{ return 200 "ok"; }} }}
  server {{ listen 127.0.0.1:{plain_port} http2; location / {{ return 200 "ok"; }} }}
}}
""")
    proc = subprocess.Popen([_nginx(), "-c", str(work / "nginx.conf"), "-p", str(work)],
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    for port in (tls_port, plain_port):
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
    yield work, tls_port, plain_port
    proc.terminate()
    proc.wait(10)


def _lines(log: Path, since: int) -> list[list[str]]:
    return [line.split() for line in log.read_text().splitlines()[since:]]


def _run(work: Path, tmp: Path, url: str, body: str) -> tuple[dict, list[list[str]]]:
    log = work / "access.log"
    since = len(log.read_text().splitlines()) if log.exists() else 0
    path = write_scenario(tmp / "h2.toml", body)
    proc = run_harness("run", str(path), "--target", url, "--out", str(tmp / "out"),
                       "--quiet", timeout=300)
    assert proc.returncode == 0, proc.stderr
    time.sleep(0.2)   # nginx writes a line as a request ends: the last ones are in
    return load_meta(proc.stdout.strip().splitlines()[-1]), _lines(log, since)


def test_every_model_over_tls_is_what_nginx_logged(nginx, tmp_path):
    work, tls_port, _ = nginx
    shutil.copy(work / "ca.pem", tmp_path / "ca.pem")
    meta, lines = _run(work, tmp_path, f"https://127.0.0.1:{tls_port}", f"""
[run]
requests = 1500
[target]
http = "2"
[target.tls]
ca = "ca.pem"
[[requests]]
name = "home"
path = "/"
{MODELS}""")
    assert meta["requests_sent"] == len(lines) == 5 * 1500
    assert {line[0] for line in lines} == {"HTTP/2.0"}
    assert {line[3] for line in lines} == {"200"}
    assert {m["protocol"] for m in meta["models"].values()} == {"HTTP/2"}


def test_streams_share_connections_as_nginx_counts_them(nginx, tmp_path):
    """h2c, 20 users, 10 streams a connection: the connections nginx logged are the ones
    the fast engine opened (each GOAWAY of nginx's at 1,000 requests, a new one), and
    every stream it sent is a logged request or one it sent again."""
    work, _, plain_port = nginx
    url = f"http://127.0.0.1:{plain_port}"
    body = """
[run]
requests = 4000
[target]
http = "2"
[load]
concurrency = 20
streams_per_connection = {streams}
[[requests]]
name = "home"
path = "/"
[[models]]
model = "uvloop"
engine = "fast"
"""
    opened = {}
    for streams in (1, 10):
        meta, lines = _run(work, tmp_path, url, body.format(streams=streams))
        h2 = meta["models"]["uvloop-fast"]["h2"]
        assert meta["requests_sent"] == len(lines) == 4000
        assert {line[0] for line in lines} == {"HTTP/2.0"}
        per_connection = Counter(line[1] for line in lines)
        assert h2["connections"] == len(per_connection), (streams, h2, len(per_connection))
        assert h2["streams"] - h2["retried"] == len(lines)
        # $connection_requests: a connection's requests so far; its last line says all
        assert max(int(line[2]) for line in lines) <= 1000
        opened[streams] = len(per_connection)
    # one user a connection: at least 20; ten a connection: 2 at a time, 1,000 each
    assert opened[1] >= 20 and opened[10] <= 8 < opened[1]
