"""HTTPS targets: every client model against the TLS mockserver with certificates made here
(trustme), verified, unverified and untrusted; mutual TLS; a server name for an IP URL;
the three handshake modes, with handshakes and resumed sessions reconciled against what
the mockserver counted; nginx with TLS when installed."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import trustme

from tests.conftest import BIN, Mock, load_meta, run_harness, start_mockserver
from tests.integration.test_run_models import MODELS

OURS = [m for m in MODELS if "locust" not in m]
LOCUST = [m for m in MODELS if "locust" in m]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for localhost/127.0.0.1, one for api.example.test only,
    and a client certificate; PEM files in one directory."""
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    for name, hosts in (("server", ("localhost", "127.0.0.1")),
                        ("named", ("api.example.test",))):
        cert = ca.issue_cert(*hosts)
        cert.private_key_pem.write_to_path(str(d / f"{name}.key"))
        with open(d / f"{name}.pem", "wb") as f:
            for blob in cert.cert_chain_pems:
                f.write(blob.bytes())
    client = ca.issue_cert("client@example.test")
    client.private_key_pem.write_to_path(str(d / "client.key"))
    client.cert_chain_pems[0].write_to_path(str(d / "client.pem"))
    other = trustme.CA()   # a CA the server does not trust
    stranger = other.issue_cert("stranger@example.test")
    stranger.private_key_pem.write_to_path(str(d / "stranger.key"))
    stranger.cert_chain_pems[0].write_to_path(str(d / "stranger.pem"))
    return d


def tls_mock(pki: Path, name: str = "server", *extra: str) -> Mock:
    """The mockserver with a certificate of our CA; its admin API reached as a client of
    it would (our client certificate for mTLS, no name check for the api.example.test
    certificate reached by IP)."""
    server = start_mockserver("--seed", "5", "--tls-cert", str(pki / f"{name}.pem"),
                              "--tls-key", str(pki / f"{name}.key"), *extra,
                              ca_file=str(pki / "ca.pem"))
    if "--tls-client-ca" in extra:
        server.client_cert = (str(pki / "client.pem"), str(pki / "client.key"))
    server.check_name = name == "server"
    return server


@pytest.fixture(scope="module")
def https_mock(pki: Path) -> Iterator[Mock]:
    server = tls_mock(pki)
    yield server
    server.stop()


def scenario(tmp_path: Path, pki: Path, models: list[str], tls: str = "",
             run: str = 'duration = "1s"\nwarmup = "0.2s"', load: str = "concurrency = 4",
             target: str = "") -> Path:
    """A scenario in tmp_path with the PEM files beside it under certs/ (so the paths in
    [target.tls] are relative to the scenario file, as a user writes them)."""
    certs = tmp_path / "certs"
    if not certs.exists():
        shutil.copytree(pki, certs)
    path = tmp_path / "tls.toml"
    path.write_text(f"[run]\n{run}\n[target]\n{target}\n[target.tls]\n{tls}\n[load]\n{load}\n"
                    '[[requests]]\nname = "home"\npath = "/"\n'
                    '[[requests]]\nname = "blob"\npath = "/bytes/300"\n'
                    + "".join(f"[[models]]\n{m}\n" for m in models))
    return path


def run(path: Path, mock: Mock, tmp_path: Path, *args: str) -> tuple[int, dict, Path, str]:
    mock.get_json("/_mock/reset", "POST", b"")
    proc = run_harness("run", str(path), "--target", mock.url, "--out", str(tmp_path / "out"),
                       "--quiet", *args, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    return proc.returncode, load_meta(str(run_dir)), run_dir, proc.stderr


def handshakes(meta: dict) -> tuple[int, int]:
    """(handshakes, resumed) our models noted, over all models of the run."""
    tls = [m["tls"] for m in meta["models"].values() if m["tls"]["measured"]]
    return sum(t["handshakes"] for t in tls), sum(t["resumed"] for t in tls)


def error_kinds(run_dir: Path) -> dict[str, set[str]]:
    errors = pd.read_csv(run_dir / "errors.csv")
    return {model: set(group["kind"]) for model, group in errors.groupby("model")}


def test_every_model_verified_and_counts_reconcile(tmp_path, pki, https_mock: Mock):
    """(Count-bounded, not 0.5 s: on a busy machine Locust's start-up took the whole half
    second and locust-http sent nothing.) With `ca`, every model in one run: no failure,
    what we sent is what the server counted, and every handshake our models noted is one
    the server completed (the stats poll's own TLS connection is the one more it saw);
    each model of ours kept one connection per user alive (per-connection)."""
    code, meta, run_dir, err = run(scenario(tmp_path, pki, MODELS, 'ca = "certs/ca.pem"',
                                            run='requests = 40\nwarmup = "0.2s"'),
                                   https_mock, tmp_path)
    stats = https_mock.stats()
    assert code == 0, err
    assert meta["requests_sent"] == stats["requests_total"] > 0
    summary = pd.read_csv(run_dir / "summary.csv")
    assert summary["failures"].sum() == 0
    assert set(summary["model"]) == set(meta["models"]) and len(meta["models"]) == len(MODELS)
    done, resumed = handshakes(meta)
    # the server's count: ours, the Locust users' (each keeps its one connection alive,
    # unseen by us), and the stats poll's own
    assert stats["tls_handshakes"] == done + len(LOCUST) * 4 + 1
    assert resumed == stats["tls_resumed"] == 0
    for label, model in meta["models"].items():
        tls = model["tls"]
        if label.startswith("locust"):
            assert not tls["measured"]   # Locust's clients hide their handshakes
            continue
        users = 1 if label == "sync" else 4
        assert tls["handshakes"] == users, label          # one per user, kept alive
        assert tls["versions"] == {"TLSv1.3": users}, label
        agg = summary[(summary["model"] == label) & (summary["name"] == "Aggregated")]
        assert int(agg["tls_handshakes"].iloc[0]) <= users   # warm-up ones not measured


def test_untrusted_certificate_is_tls_verify_in_every_model(tmp_path, pki, https_mock):
    """Neither `ca` nor `verify = false`: every request of every model fails as
    tls_verify, none reaches the server, and the run exits 1."""
    code, meta, run_dir, err = run(scenario(tmp_path, pki, MODELS,
                                            run='duration = "0.5s"'), https_mock, tmp_path)
    assert code == 1, err
    assert "MonkeyPatchWarning" not in err   # ssl is imported only after gevent's patches
    assert https_mock.stats()["requests_total"] == 0
    kinds = error_kinds(run_dir)
    assert set(kinds) == set(meta["models"]) and all(k == {"tls_verify"}
                                                      for k in kinds.values()), kinds


def test_verify_false_accepts_the_certificate(tmp_path, pki, https_mock):
    code, meta, run_dir, err = run(scenario(tmp_path, pki, MODELS, run='requests = 40'),
                                   https_mock, tmp_path, "--set", "target.tls.verify=false")
    assert code == 0, err
    assert meta["requests_sent"] == https_mock.stats()["requests_total"] > 0
    assert pd.read_csv(run_dir / "summary.csv")["failures"].sum() == 0


# one of each client library: http.client, aiohttp, the fast engine, requests, geventhttpclient
MTLS_MODELS = [OURS[0], OURS[2], OURS[5], *LOCUST]


@pytest.mark.parametrize("client", ["client", "stranger", None])
def test_mutual_tls(tmp_path, pki, client):
    """A server that requires client certificates: ours is accepted; one from a CA the
    server does not trust, or none, is refused as tls_handshake by every model."""
    server = tls_mock(pki, "server", "--tls-client-ca", str(pki / "ca.pem"))
    try:
        tls = 'ca = "certs/ca.pem"'
        if client:
            tls += f'\ncert = "certs/{client}.pem"\nkey = "certs/{client}.key"'
        code, meta, run_dir, err = run(scenario(tmp_path, pki, MTLS_MODELS, tls,
                                                run='duration = "0.5s"'), server, tmp_path)
        counted = server.stats()
    finally:
        server.stop()
    if client == "client":
        assert code == 0, err
        assert meta["requests_sent"] == counted["requests_total"] > 0
    else:
        assert code == 1 and counted["requests_total"] == 0
        # a request that never reached HTTP is not sent: counted apart
        assert meta["requests_sent"] == 0, meta["models"]
        assert all(m["not_sent"] > 0 for m in meta["models"].values()), meta["models"]
        kinds = error_kinds(run_dir)
        assert all(k == {"tls_handshake"} for k in kinds.values()), kinds
        assert set(kinds) == set(meta["models"])


def test_server_name_for_an_ip_url(tmp_path, pki):
    """A certificate for api.example.test only, reached at 127.0.0.1: `server_name`
    makes it verify (SNI and the name checked); without it, tls_verify."""
    server = tls_mock(pki, "named")
    models = [OURS[0], OURS[5]]   # Locust cannot (refused at validation)
    try:
        base = 'ca = "certs/ca.pem"\n'
        code, meta, first, err = run(scenario(tmp_path, pki, models,
                                          base + 'server_name = "api.example.test"',
                                          run='duration = "0.5s"'), server, tmp_path)
        assert code == 0, (err, error_kinds(first))
        code, _, run_dir, err = run(scenario(tmp_path, pki, models, base,
                                             run='duration = "0.5s"'), server, tmp_path)
        assert code == 1 and all(k == {"tls_verify"} for k in error_kinds(run_dir).values())
    finally:
        server.stop()


def test_per_request_handshakes_one_per_request(tmp_path, pki, https_mock):
    """handshake = "per-request": a new connection and a full handshake for every request
    (what the server counted, less its stats poll), none resumed."""
    code, meta, run_dir, err = run(scenario(
        tmp_path, pki, OURS, 'ca = "certs/ca.pem"\nhandshake = "per-request"',
        run='requests = 40'), https_mock, tmp_path)
    stats = https_mock.stats()
    assert code == 0, err
    done, resumed = handshakes(meta)
    assert done == meta["requests_sent"] == stats["requests_total"] == \
        stats["tls_handshakes"] - 1 > 0
    assert resumed == stats["tls_resumed"] == 0
    for label, model in meta["models"].items():
        assert model["tls"]["handshakes"] == model["requests_sent"], label


def test_resume_resumes_sessions_and_counts_them(tmp_path, pki, https_mock):
    """handshake = "resume": a new connection per request, the session resumed (all but
    each user's first); our count of resumed handshakes is the server's, exactly."""
    code, meta, _, err = run(scenario(
        tmp_path, pki, OURS, 'ca = "certs/ca.pem"\nhandshake = "resume"',
        run='requests = 40'), https_mock, tmp_path)
    stats = https_mock.stats()
    assert code == 0, err
    done, resumed = handshakes(meta)
    assert done == meta["requests_sent"] == stats["tls_handshakes"] - 1
    assert resumed == stats["tls_resumed"] > 0.8 * done
    for label, model in meta["models"].items():
        assert model["tls"]["session_reuse_ratio"] > 0.8, label


def test_plain_http_per_request_opens_a_connection_per_request(tmp_path, shared_mock):
    path = tmp_path / "plain.toml"
    path.write_text('[run]\nduration = "0.5s"\n[target]\nhandshake = "per-request"\n'
                    '[load]\nconcurrency = 4\n[[requests]]\nname = "home"\npath = "/"\n'
                    + "".join(f"[[models]]\n{m}\n" for m in OURS))
    shared_mock.get_json("/_mock/reset", "POST", b"")
    proc = run_harness("run", str(path), "--target", shared_mock.url, "--out",
                       str(tmp_path), "--quiet", timeout=300)
    assert proc.returncode == 0, proc.stderr
    meta = load_meta(proc.stdout.strip().splitlines()[-1])
    stats = shared_mock.stats()
    assert meta["requests_sent"] == stats["requests_total"] > 0
    assert stats["connections_total"] == stats["requests_total"] + 1   # + the stats poll


def test_embedded_mock_with_tls_is_pinned(tmp_path):
    """[target.mock] tls = true: the run trusts the mock's own certificate, no other."""
    path = tmp_path / "embedded.toml"
    path.write_text('[run]\nrequests = 40\n[target.mock]\ntls = true\n[load]\n'
                    'concurrency = 2\n[[requests]]\nname = "home"\npath = "/"\n'
                    '[[models]]\nmodel = "uvloop"\nengine = "fast"\n[[models]]\n'
                    'model = "locust-http"\n')
    proc = run_harness("run", str(path), "--out", str(tmp_path), "--quiet")
    assert proc.returncode == 0, proc.stderr
    meta = load_meta(proc.stdout.strip().splitlines()[-1])
    assert meta["target_url"].startswith("https://127.0.0.1:")
    assert meta["requests_sent"] == meta["mockserver_stats"]["requests_total"] > 0
    assert meta["models"]["uvloop-fast"]["tls"]["handshakes"] == 2


def test_self_signed_mockserver_prints_its_fingerprint(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    server = start_mockserver("--tls-self-signed")
    try:
        _, _, path, _, fingerprint = server.cert_line.split()
        cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
        assert fingerprint == cert.fingerprint(hashes.SHA256()).hex(":").upper()
        assert server.get_json("/_mock/stats")[1]["tls_handshakes"] == 1
    finally:
        assert server.stop() == 0
    assert not Path(path).exists()   # made at start, removed at exit


@pytest.mark.parametrize("args, expected", [
    (["--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"],
     "--tls-cert/--tls-key: no such file"),
    (["--tls-cert", "x.pem"], "--tls-cert and --tls-key: give both"),
    (["--tls-client-ca", "ca.pem"], "--tls-client-ca: needs"),
])
def test_mockserver_tls_usage_errors(args, expected):
    proc = subprocess.run([str(BIN / "mockserver"), "--port", "0", *args],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and expected in proc.stderr and "Traceback" not in proc.stderr


# -- nginx with TLS: counts match its access log --------------------------------------------

def _nginx() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                     else None)


@pytest.mark.skipif(_nginx() is None, reason="nginx is not installed (apt-get install "
                                             "nginx-light to run this test)")
def test_nginx_tls_access_log_matches(tmp_path, pki):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    work = Path(tempfile.mkdtemp(prefix="nginx-tls-", dir=tmp_path))
    log = work / "access.log"
    (work / "nginx.conf").write_text(f"""
worker_processes 1; daemon off; pid {work}/nginx.pid; error_log {work}/error.log;
events {{ worker_connections 1024; }}
http {{ access_log {log}; client_body_temp_path {work}; proxy_temp_path {work};
  fastcgi_temp_path {work}; uwsgi_temp_path {work}; scgi_temp_path {work};
  server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {pki}/server.pem;
    ssl_certificate_key {pki}/server.key; location / {{ return 200 "ok"; }} }} }}
""")
    nginx = subprocess.Popen([_nginx(), "-c", str(work / "nginx.conf"), "-p", str(work)],
                             stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        models = [OURS[0], OURS[3], OURS[5], LOCUST[1]]
        path = scenario(tmp_path, pki, models, 'ca = "certs/ca.pem"', run='requests = 40')
        proc = run_harness("run", str(path), "--target", f"https://127.0.0.1:{port}",
                           "--out", str(tmp_path / "out"), "--quiet", timeout=300)
        assert proc.returncode == 0, proc.stderr
        meta = load_meta(proc.stdout.strip().splitlines()[-1])
    finally:
        nginx.terminate()
        nginx.wait(10)
    assert meta["requests_sent"] == len(log.read_text().splitlines()) > 0


def test_http_target_with_tls_settings_is_refused(tmp_path, pki):
    """`--target http://...` over a scenario with [target.tls]: exit 2, one line, nothing
    started."""
    path = scenario(tmp_path, pki, [OURS[0]], 'ca = "certs/ca.pem"')
    proc = run_harness("run", str(path), "--target", "http://127.0.0.1:9", "--out",
                       str(tmp_path / "out"))
    assert proc.returncode == 2 and not (tmp_path / "out").exists()
    assert proc.stderr.strip().count("\n") == 0 and "needs an https:// URL" in proc.stderr
