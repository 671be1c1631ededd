"""deploy/kubernetes' container commands, run as the pods run them, each in its own network
namespace (the Services' names resolve through /etc/netns/NAME/hosts): CURVE keys laid out
as the Secret's items mount them, the tokens as the Secret's env gives them. The
dashboard off loopback: refused without --web-token, and with one every request needs it.
Needs root and iproute2; skipped otherwise."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_kubernetes import TOKEN, command, container, mounts, resources
from tests.netns.test_compose_netns import ROOT, Network, local, need_root, terminate

pytestmark = pytest.mark.netns
WORKERS = 2   # the manifests say 4 (one CPU each); this machine has two cores


def app_dir(base: Path, res: dict, job: str, keys: Path) -> Path:
    """A pod's WORKDIR: the image's scenarios, and the Secret's items where it mounts them."""
    base.mkdir()
    shutil.copytree(ROOT / "scenarios", base / "scenarios")
    for path, volume in mounts(res, "Job", job).items():
        if "secret" in volume:
            for item in volume["secret"]["items"]:
                dst = base / Path(path).name / item["path"]
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(keys / item["key"], dst)
    return base


def probe(net: Network, host: str, url: str, token: str | None, cwd: Path) -> tuple[int, str]:
    """GET url from inside `host`'s namespace: (status, body)."""
    code = ("import sys, urllib.request, urllib.error\n"
            "req = urllib.request.Request(sys.argv[1])\n"
            "if len(sys.argv) > 2: req.add_header('Authorization', 'Bearer ' + sys.argv[2])\n"
            "try:\n"
            "    r = urllib.request.urlopen(req, timeout=5); print(r.status); "
            "print(r.read().decode())\n"
            "except urllib.error.HTTPError as e:\n"
            "    print(e.code)\n")
    proc = net.run(host, [sys.executable, "-c", code, url, *([token] if token else [])], cwd)
    out = proc.communicate(timeout=30)[0]
    status, _, body = out.partition("\n")
    return int(status), body


def test_manifest_commands_in_namespaces(tmp_path):
    need_root()
    res = resources()
    keys = tmp_path / "keys"
    subprocess.run([str(Path(sys.executable).parent / "harness"), "keys", str(keys)],
                   check=True, capture_output=True, timeout=30)
    coord_dir = app_dir(tmp_path / "coordinator", res, "coordinator", keys)
    worker_dirs = [app_dir(tmp_path / f"worker{i}", res, "workers", keys)
                   for i in range(1, WORKERS + 1)]
    env = ["env", f"MOCKSERVER_ADMIN_TOKEN={TOKEN}"]
    mock_cmd = env + local(command(container(res, "Deployment", "mockserver")))
    coord_cmd = local(command(container(res, "Job", "coordinator")))
    coord_cmd[coord_cmd.index("--expect-workers") + 1] = str(WORKERS)
    worker_cmd = local(command(container(res, "Job", "workers")))
    net = Network(["mockserver", "coordinator", *(d.name for d in worker_dirs)])
    procs = []
    try:
        # off loopback without a token: refused before anything starts
        bare = coord_cmd[:coord_cmd.index("--web-token")]
        refused = net.run("coordinator", bare, coord_dir)
        _, err = refused.communicate(timeout=60)
        assert refused.returncode == 2 and "--web-token" in err, err
        assert not (coord_dir / "results").exists() or not any(
            (coord_dir / "results").iterdir())

        mock = net.run("mockserver", mock_cmd, tmp_path)
        procs.append(mock)
        assert mock.stdout.readline().startswith("listening on http://0.0.0.0:8080")
        coord = net.run("coordinator", coord_cmd, coord_dir)
        procs.append(coord)
        assert coord.stdout.readline().startswith("dashboard: http://0.0.0.0:8089/")
        for d in worker_dirs:
            procs.append(net.run(d.name, worker_cmd, d))
        # the dashboard seen from a worker's namespace: the token on every path
        web = "http://coordinator:8089/"
        deadline = time.monotonic() + 60
        while "running" not in probe(net, "worker1", web + "api/state", TOKEN, coord_dir)[1]:
            assert time.monotonic() < deadline, "the run never showed as running"
            time.sleep(0.5)
        for path in ("", "api/state", "metrics"):
            assert probe(net, "worker1", web + path, None, coord_dir)[0] == 401
            assert probe(net, "worker1", web + path, "wrong", coord_dir)[0] == 401
        assert probe(net, "worker1", web + "?token=" + TOKEN, None, coord_dir)[0] == 200
        status, text = probe(net, "worker1", web + "metrics", TOKEN, coord_dir)
        assert status == 200
        names = {f.name for f in text_string_to_metric_families(text)}
        assert {"loadharness_requests", "loadharness_latency_seconds"} <= names
        # the mock's metrics behind its admin token, the same one
        assert probe(net, "coordinator", "http://mockserver:8080/_mock/metrics", None,
                     coord_dir)[0] == 401
        out, err = coord.communicate(timeout=120)
        assert coord.returncode == 0, err
        run_dir = coord_dir / out.strip().splitlines()[-1]
        meta = json.loads((run_dir / "meta.json").read_text())
        assert len(meta["workers"]) == WORKERS and not meta["partial"]
        status, body = probe(net, "coordinator", "http://mockserver:8080/_mock/stats", TOKEN,
                             coord_dir)
        assert status == 200
        assert meta["requests_sent"] == json.loads(body)["requests_total"] > 0
        for p in procs[2:]:
            assert p.wait(20) == 0
    finally:
        terminate(procs)
        net.close()
