"""docker-compose.yml, proven without a docker engine: the compose schema check
(`docker-compose config`, Debian's 1.29), and every service command is a valid invocation
of our CLI whose ports, names and volumes agree with each other."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from harness.cli import build_parser
from harness.scenario import load_scenario
from mockserver.cli import options_from_args

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def expand(arg: str) -> str:
    return arg.replace("${WORKERS:-4}", "4")


def test_compose_schema():
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip("docker-compose (Debian package) is not installed; .ci/run installs it")
    proc = subprocess.run([exe, "-f", str(COMPOSE), "config", "-q"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_commands_are_valid_cli_invocations():
    svc = services()
    assert set(svc) == {"mockserver", "coordinator", "worker"}
    mock_cmd = svc["mockserver"]["command"]
    assert mock_cmd[0] == "mockserver"
    opts, processes = options_from_args(mock_cmd[1:])
    coord_cmd = [expand(a) for a in svc["coordinator"]["command"]]
    assert coord_cmd[0] == "harness"
    coord = build_parser().parse_args(coord_cmd[1:])
    worker_cmd = svc["worker"]["command"]
    assert worker_cmd[0] == "harness"
    work = build_parser().parse_args(worker_cmd[1:])
    assert coord.command == "coordinator" and work.command == "worker"

    # The scenario exists in the image (COPY scenarios) and targets the mockserver service.
    scenario = load_scenario(ROOT / coord.scenario)
    target = urlsplit(scenario.target_url)
    assert target.hostname == "mockserver" and target.port == opts.port
    # The healthcheck probes the port the mockserver listens on.
    health = " ".join(svc["mockserver"]["healthcheck"]["test"])
    assert f"127.0.0.1:{opts.port}/health" in health
    # Workers connect to the coordinator service on the port it binds.
    bind_port = coord.bind.rsplit(":", 1)[1]
    connect = urlsplit(work.connect.replace("tcp://", "http://"))
    assert connect.hostname == "coordinator" and str(connect.port) == bind_port
    # Results: --out is relative to the image's WORKDIR, mounted from ./results.
    workdir = next(line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines()
                   if line.startswith("WORKDIR"))
    assert f"./results:{workdir}/{coord.out}" in svc["coordinator"]["volumes"]
    assert svc["coordinator"]["depends_on"]["mockserver"]["condition"] == "service_healthy"
    # Off loopback: the mockserver's admin API and the coordinator's bind say so explicitly.
    assert "--insecure-admin" in mock_cmd and coord.insecure


def test_image_is_built_once_small_and_not_root():
    """The build context leaves out .venv (550 MB) and the like; one service builds the
    image and the others use it; the image runs as UID 10001, and compose passes the
    host's UID so ./results stays the user's."""
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".venv", ".git", "results"} <= ignored
    dockerfile = (ROOT / "Dockerfile").read_text().splitlines()
    users = [line.split()[1] for line in dockerfile if line.startswith("USER ")]
    assert users == ["10001"]
    assert any("useradd --uid 10001" in line for line in dockerfile)
    svc = services()
    assert [name for name, s in svc.items() if "build" in s] == ["mockserver"]
    assert {s["image"] for s in svc.values()} == {"loadharness:local"}
    assert {s["user"] for s in svc.values()} == {"${HARNESS_UID:-10001}:${HARNESS_GID:-10001}"}


def test_image_is_reproducible_and_says_what_it_serves():
    """The base image by a full version tag (not a moving `3.11-slim`), dependencies
    installed from constraints.txt whose pins satisfy pyproject's lower bounds and cover
    every runtime dependency, a default CMD and the ports it serves."""
    import re
    import tomllib

    from packaging.requirements import Requirement
    from packaging.version import Version
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    base = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert len(base) == 1 and (re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base[0])
                               or "@sha256:" in base[0]), base
    assert any("pip install" in line and "-c constraints.txt" in line for line in lines)
    assert 'CMD ["harness", "--help"]' in lines
    exposed = {p for line in lines if line.startswith("EXPOSE ") for p in line.split()[1:]}
    assert exposed == {"8080", "5555", "8089"}
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.lower().replace("_", "-")] = Version(version)
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in map(Requirement, deps):
        name = dep.name.lower().replace("_", "-")
        assert name in pins, f"constraints.txt does not pin {name}"
        assert dep.specifier.contains(pins[name]), (name, pins[name], dep.specifier)


def test_compose_and_readme_agree():
    """No obsolete top-level `version` (docker compose v2 warns about it), and every
    `docker compose up` in the README passes HARNESS_UID/GID (without them the
    containers cannot write ./results)."""
    assert "version" not in yaml.safe_load(COMPOSE.read_text())
    readme = (ROOT / "README.md").read_text()
    ups = [line for line in readme.splitlines() if "docker compose up" in line]
    assert ups and all("HARNESS_UID=$(id -u) HARNESS_GID=$(id -g)" in u for u in ups), ups
