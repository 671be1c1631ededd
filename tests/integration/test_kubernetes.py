"""deploy/kubernetes, proven without a cluster: every manifest (and kustomize's rendering of
them, where kubectl is installed) validates against the Kubernetes schema offline
(kubernetes-validate, strict); every container command is a valid invocation of our CLI
whose names, ports, mounts, Secrets and worker counts agree with each other and with the
image. tests/netns/test_kubernetes_netns.py runs the same commands."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from harness.cli import build_parser
from harness.scenario import load_scenario
from mockserver.cli import options_from_args

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
K8S_VERSION = "1.33"
TOKEN = "t0ken"


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def resources() -> dict[tuple[str, str], dict]:
    """(kind, name) -> the resource, over the kustomization's files."""
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    out = {}
    for name in kustomization["resources"]:
        for doc in documents(DEPLOY / name):
            out[(doc["kind"], doc["metadata"]["name"])] = doc
    return out


def container(res: dict, kind: str, name: str) -> dict:
    spec = res[(kind, name)]["spec"]["template"]["spec"]
    (only,) = spec["containers"]
    return only


def command(c: dict) -> list[str]:
    """The container's command as Kubernetes runs it: $(VAR) from the container's env."""
    env = {e["name"]: TOKEN for e in c.get("env", [])}
    out = []
    for arg in c["command"]:
        for var in env:
            arg = arg.replace(f"$({var})", env[var])
        out.append(arg)
    return out


def mounts(res: dict, kind: str, name: str) -> dict[str, dict]:
    """mountPath -> the volume mounted there."""
    spec = res[(kind, name)]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    (c,) = spec["containers"]
    return {m["mountPath"]: volumes[m["name"]] for m in c["volumeMounts"]}


def workdir() -> str:
    return next(line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines()
                if line.startswith("WORKDIR"))


@pytest.mark.parametrize("path", sorted(DEPLOY.glob("*.yaml")), ids=lambda p: p.name)
def test_manifests_validate_against_the_schema(path: Path):
    if path.name == "kustomization.yaml":
        assert yaml.safe_load(path.read_text())["kind"] == "Kustomization"
        return
    for doc in documents(path):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_kustomize_renders_valid_resources():
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (kustomize's rendering is checked with it)")
    proc = subprocess.run([kubectl, "kustomize", str(DEPLOY)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rendered = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert {(d["kind"], d["metadata"]["name"]) for d in rendered} == set(resources())
    for doc in rendered:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "loadharness"


def test_commands_are_valid_cli_invocations(monkeypatch):
    res = resources()
    parser = build_parser()
    mock_c = container(res, "Deployment", "mockserver")
    for e in mock_c["env"]:    # the Secret's token, as the container gets it
        assert e["valueFrom"]["secretKeyRef"]["name"] == "loadharness-web"
        monkeypatch.setenv(e["name"], TOKEN)
    mock_cmd = command(mock_c)
    assert mock_cmd[0] == "mockserver"
    opts, _ = options_from_args(mock_cmd[1:])
    assert opts.admin_token == TOKEN   # off loopback: the admin API behind the token
    coord_c = container(res, "Job", "coordinator")
    coord = parser.parse_args(command(coord_c)[1:])
    worker_c = container(res, "Job", "workers")
    work = parser.parse_args(command(worker_c)[1:])
    assert coord.command == "coordinator" and work.command == "worker"
    assert command(coord_c)[0] == command(worker_c)[0] == "harness"

    # the scenario is in the image and targets the mockserver Service on its port
    scenario = load_scenario(ROOT / coord.scenario)
    target = urlsplit(scenario.target_url)
    mock_svc = res[("Service", "mockserver")]["spec"]["ports"][0]
    assert target.hostname == "mockserver" and target.port == mock_svc["port"]
    assert container(res, "Deployment", "mockserver")["ports"][0]["containerPort"] \
        == opts.port
    # workers reach the coordinator Service on the port the coordinator binds
    coord_ports = {p["name"]: p for p in res[("Service", "coordinator")]["spec"]["ports"]}
    connect = urlsplit(work.connect.replace("tcp://", "http://"))
    assert connect.hostname == "coordinator"
    assert connect.port == coord_ports["zmq"]["port"] == int(coord.bind.rsplit(":", 1)[1])
    # the dashboard's port, behind the Secret's token, is the Service's web port
    assert coord.web.endswith(f":{coord_ports['web']['port']}") and coord.web_token == TOKEN
    secrets = {e["valueFrom"]["secretKeyRef"]["name"] for e in coord_c["env"]}
    assert secrets == {"loadharness-web"}
    # as many workers as the coordinator expects, one CPU each
    jobs = res[("Job", "workers")]["spec"]
    assert jobs["parallelism"] == jobs["completions"] == coord.expect_workers
    assert worker_c["resources"]["requests"]["cpu"] == "1"
    # results on the claim, at the image's WORKDIR/--out; CURVE keys where --curve-dir
    # looks, with exactly the files each side loads (control/curve.py)
    home = workdir()
    coord_mounts = mounts(res, "Job", "coordinator")
    claim = coord_mounts[f"{home}/{coord.out}"]["persistentVolumeClaim"]["claimName"]
    assert ("PersistentVolumeClaim", claim) in res
    keys = coord_mounts[f"{home}/{coord.curve_dir}"]["secret"]
    assert {i["path"] for i in keys["items"]} == {"coordinator.key", "coordinator.key_secret",
                                                   "authorized/worker.key"}
    worker_keys = mounts(res, "Job", "workers")[f"{home}/{work.curve_dir}"]["secret"]
    assert {i["path"] for i in worker_keys["items"]} == {"worker.key_secret",
                                                          "coordinator.key"}
    assert keys["secretName"] == worker_keys["secretName"] == "loadharness-curve"
    # the image's user can read the mounted keys and write the claim
    for kind, name in (("Job", "coordinator"), ("Job", "workers")):
        security = res[(kind, name)]["spec"]["template"]["spec"]["securityContext"]
        assert security["runAsUser"] == security["fsGroup"] == 10001
    assert keys["defaultMode"] & 0o040   # group-readable: fsGroup reads it


def test_fetch_pod_mounts_the_results_claim():
    (pod,) = documents(DEPLOY / "fetch-results.yaml")
    claim = pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
    assert ("PersistentVolumeClaim", claim) in resources()
    assert pod["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] == \
        f"{workdir()}/results"
