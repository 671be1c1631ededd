"""The compose services, run exactly as compose would, each in its own network namespace:
veth pairs on a bridge (198.18.0.0/15, the benchmark range), /etc/netns/NAME/hosts so the
service names resolve. Needs root and iproute2; skipped otherwise."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SUBNET = "198.18.0"

pytestmark = pytest.mark.netns


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces (ip netns)")
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2 (the ip command)")


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=30)


class Network:
    """One namespace per host, all on one bridge in the root namespace."""

    def __init__(self, hosts: list[str]) -> None:
        self.tag = uuid.uuid4().hex[:6]
        self.bridge = f"lhbr{self.tag}"
        self.ns = {h: f"lh-{h}-{self.tag}" for h in hosts}
        self.addr = {h: f"{SUBNET}.{i + 1}" for i, h in enumerate(hosts)}
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "link", "set", self.bridge, "up")
        for i, host in enumerate(hosts):
            ns, inside, outside = self.ns[host], f"lhv{i}{self.tag}", f"lhp{i}{self.tag}"
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", inside, "type", "veth", "peer", "name", outside)
            sh("ip", "link", "set", inside, "netns", ns)
            sh("ip", "link", "set", outside, "master", self.bridge)
            sh("ip", "link", "set", outside, "up")
            sh("ip", "-n", ns, "addr", "add", f"{self.addr[host]}/24", "dev", inside)
            sh("ip", "-n", ns, "link", "set", inside, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            etc = Path("/etc/netns") / ns
            etc.mkdir(parents=True, exist_ok=True)
            lines = ["127.0.0.1 localhost"] + [f"{a} {h}" for h, a in self.addr.items()]
            (etc / "hosts").write_text("\n".join(lines) + "\n")

    def port(self, host: str) -> str:
        """The host's bridge port in the root namespace: set it down to cut the host off."""
        return f"lhp{list(self.ns).index(host)}{self.tag}"

    def run(self, host: str, cmd: list[str], cwd: Path) -> subprocess.Popen[str]:
        return subprocess.Popen(["ip", "netns", "exec", self.ns[host], *cmd], cwd=cwd,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def close(self) -> None:
        for ns in self.ns.values():
            subprocess.run(["ip", "netns", "pids", ns], capture_output=True)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


def local(cmd: list[str]) -> list[str]:
    """The image's commands, from this virtualenv: `harness` -> .venv/bin/harness."""
    cmd = [a.replace("${WORKERS:-4}", "2") for a in cmd]
    return [str(BIN / cmd[0]), *cmd[1:]]


def test_compose_services_in_namespaces(tmp_path):
    need_root()
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    work = tmp_path / "app"  # the image's WORKDIR: scenarios/ inside, results/ written
    shutil.copytree(ROOT / "scenarios", work / "scenarios")
    # three workers for WORKERS=2: compose --scale above WORKERS; the third waits as spare
    net = Network(["mockserver", "coordinator", "worker1", "worker2", "worker3"])
    procs = []
    try:
        mock = net.run("mockserver", local(services["mockserver"]["command"]), work)
        procs.append(mock)
        assert mock.stdout.readline().startswith("listening on http://0.0.0.0:8080")
        coord = net.run("coordinator", local(services["coordinator"]["command"]), work)
        procs.append(coord)
        time.sleep(1)
        for host in ("worker1", "worker2", "worker3"):
            procs.append(net.run(host, local(services["worker"]["command"]), work))
        out, err = coord.communicate(timeout=120)
        assert coord.returncode == 0, err
        run_dir = Path(work / out.strip().splitlines()[-1])
        meta = json.loads((run_dir / "meta.json").read_text())
        assert len(meta["workers"]) == 2 and not meta["partial"]
        assert meta["target_url"] == "http://mockserver:8080"
        probe = net.run("coordinator", [sys.executable, "-c",
                        "import urllib.request,sys;sys.stdout.write(urllib.request.urlopen("
                        "'http://mockserver:8080/_mock/stats').read().decode())"], work)
        stats = json.loads(probe.communicate(timeout=30)[0])
        assert meta["requests_sent"] == stats["requests_total"] > 0
        for p in procs[2:]:
            assert p.wait(20) == 0
    finally:
        terminate(procs)
        net.close()


def terminate(procs: list[subprocess.Popen[str]]) -> None:
    """End the processes a test started (by PID), politely first."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
