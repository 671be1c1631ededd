"""[target.tls] and handshake: every key checked before anything starts, files read
relative to the scenario file, each mistake one line naming the key (and the path)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from harness.control.plan import make_job
from harness.errors import ScenarioError
from harness.scenario import load_scenario

BODY = '[run]\nduration = "1s"\n{target}\n[[requests]]\nname = "a"\npath = "/"\n' \
       '[[models]]\nmodel = "{model}"\n'


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    client = ca.issue_cert("client@example.test")
    client.cert_chain_pems[0].write_to_path(str(d / "client.pem"))
    client.private_key_pem.write_to_path(str(d / "client.key"))
    other = ca.issue_cert("other@example.test")
    other.private_key_pem.write_to_path(str(d / "other.key"))
    (d / "notpem.pem").write_text("hello\n")
    return d


def load(tmp_path: Path, certs: Path, target: str, model: str = "thread"):
    (tmp_path / "certs").mkdir(exist_ok=True)
    for f in certs.iterdir():
        (tmp_path / "certs" / f.name).write_bytes(f.read_bytes())
    path = tmp_path / "s.toml"
    path.write_text(BODY.format(target=target, model=model))
    return load_scenario(path)


def test_tls_files_are_read_relative_to_the_scenario(tmp_path, certs):
    sc = load(tmp_path, certs, '[target]\nurl = "https://127.0.0.1:8443"\n[target.tls]\n'
              'ca = "certs/ca.pem"\ncert = "certs/client.pem"\nkey = "certs/client.key"\n'
              'server_name = "api.example.test"\nhandshake = "resume"')
    assert sc.tls.ca_pem == (certs / "ca.pem").read_text()
    assert sc.tls.key_pem and sc.tls.server_name == "api.example.test"
    assert sc.handshake == "resume" and sc.tls.verify
    job = make_job(sc, sc.models[0], sc.target_url, 0, 1)
    assert job.secure and job.host_port == ("127.0.0.1", 8443) and job.fresh_connections
    assert job.tls["ca_pem"] == sc.tls.ca_pem   # the text travels, not a path


@pytest.mark.parametrize("target, key, message", [
    ('[target]\nurl = "https://h"\n[target.tls]\nca = "certs/missing.pem"',
     "[target.tls].ca", "no such file: "),
    ('[target]\nurl = "https://h"\n[target.tls]\nca = "certs/notpem.pem"',
     "[target.tls].ca", "expected PEM certificates"),
    ('[target]\nurl = "https://h"\n[target.tls]\ncert = "certs/client.pem"',
     "[target.tls].cert", "expected key too"),
    ('[target]\nurl = "https://h"\n[target.tls]\ncert = "certs/client.pem"\n'
     'key = "certs/other.key"', "[target.tls].key", "does not belong"),
    ('[target]\nurl = "http://h"\n[target.tls]\nverify = false',
     "[target.tls]", "need an https:// URL"),
    ('[target]\nurl = "https://h"\n[target.tls]\nverify = "no"',
     "[target.tls].verify", "expected true or false"),
    ('[target]\nurl = "https://h"\n[target.tls]\nhandshake = "sometimes"',
     "[target.tls].handshake", "expected one of per-connection, per-request, resume"),
    ('[target]\nurl = "http://h"\nhandshake = "resume"',
     "[target].handshake", "needs an https:// URL"),
    ('[target]\nurl = "https://h"\n[target.tls]\nserver_name = "a b"',
     "[target.tls].server_name", "expected a host name"),
    ('[target.mock]\nlatency = 1\n[target.tls]\nverify = false',
     "[target.tls]", "embedded mock serves plain HTTP"),
    ('[target.mock]\ntls = true\n[target.tls]\nca = "certs/ca.pem"',
     "[target.tls].ca", "trusted automatically"),
    ('[target.mock]\ntls = "yes"', "[target.mock].tls", "expected true or false"),
    ('[target]\nurl = "ftp://h"', "[target].url", "expected an http:// or https:// URL"),
])
def test_tls_mistakes_name_the_key(tmp_path, certs, target, key, message):
    with pytest.raises(ScenarioError) as err:
        load(tmp_path, certs, target)
    assert f"s.toml: {key}: " in str(err.value) and message in str(err.value)
    if "no such file" in message:
        assert str(tmp_path / "certs" / "missing.pem") in str(err.value)


@pytest.mark.parametrize("target, message", [
    ('[target]\nurl = "https://h"\nhandshake = "per-request"',
     "makes per-connection handshakes only"),
    ('[target]\nurl = "https://127.0.0.1"\n[target.tls]\nserver_name = "api.example.test"',
     "cannot set [target.tls].server_name"),
])
def test_locust_refuses_what_it_cannot_do(tmp_path, certs, target, message):
    with pytest.raises(ScenarioError, match=r"\[\[models\]\]\[0\]\.model") as err:
        load(tmp_path, certs, target, model="locust-http")
    assert message in str(err.value)
