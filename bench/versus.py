"""Side by side with an earlier commit (`--base REV`, default the commit before the transport
step): the same mockserver capacity and load-generation measurements, the base's code and
this tree's, alternating round by round, in one run. A refactoring must not cost speed.

The base runs from a git worktree through a throw-away virtualenv that reuses this one's
installed dependencies (a .pth file), so only our two packages differ between the sides.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from bench.common import (
    CLIENT_CORE,
    ROOT,
    Section,
    free_port,
    have_wrk,
    nginx,
    nginx_available,
    pinned,
    taskset,
    wrk,
)

DEFAULT_BASE = "646feb4"   # main before the transport step (issue 21)
MODELS = (('model = "uvloop"\nengine = "fast"', "uvloop-fast"),
          ('model = "asyncio"', "asyncio-aiohttp"),
          ('model = "thread"', "thread"))
NOISE = 0.95               # this tree at >= 95% of the base: no slowdown beyond noise


def base_python(rev: str) -> tuple[Path, str]:
    """A python that imports harness and mockserver from commit `rev`."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-base-"))
    tree = tmp / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev],
                   check=True, capture_output=True)
    short = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                           check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp / "venv")],
                   check=True)
    site = Path(sysconfig.get_paths(vars={"base": str(tmp / "venv"),
                                          "platbase": str(tmp / "venv")})["purelib"])
    site.mkdir(parents=True, exist_ok=True)
    (site / "base.pth").write_text(f"{tree}\n{sysconfig.get_paths()['purelib']}\n")
    python = tmp / "venv" / "bin" / "python"
    # `python -m harness` puts the working directory first on sys.path: run from this
    # repository, the base side imported THIS tree's harness and mockserver (every versus
    # section before 2026-11-30 compared this tree with itself). PYTHONSAFEPATH (set in
    # run(), inherited by the coordinator, workers and load processes) keeps it out; the
    # base side is checked to import its own tree before anything is measured.
    found = subprocess.run([str(python), "-c", "import harness, mockserver; "
                            "print(harness.__file__); print(mockserver.__file__)"],
                           capture_output=True, text=True, check=True).stdout.split()
    if not all(Path(f).is_relative_to(tree) for f in found):
        raise RuntimeError(f"base {short}: imports {found}, not its own tree {tree}")
    return python, short


def drop_worktree(python: Path) -> None:
    tree = python.parents[2] / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                   capture_output=True)


def harness_rps(python: Path, model: str, label: str, url: str, seconds: float) -> float:
    """`python -m harness run` of one closed-model model (50 users) on the client core."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-versus-"))
    path = tmp / "s.toml"
    path.write_text(f'[run]\nduration = "{seconds}s"\nwarmup = "1s"\nworkers = 1\n'
                    f'[load]\nconcurrency = 50\n[[requests]]\nname = "get"\npath = "/"\n'
                    f"[[models]]\n{model}\n")
    proc = subprocess.run(taskset(CLIENT_CORE) + [str(python), "-m", "harness", "run",
                          str(path), "--out", str(tmp), "--quiet", "--target", url],
                          capture_output=True, text=True, timeout=seconds + 120)
    if proc.returncode != 0:
        raise RuntimeError(f"harness run ({python}) failed: {proc.stderr[-1500:]}")
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    meta = json.loads((run_dir / "meta.json").read_text())
    summary = (run_dir / "summary.csv").read_text().splitlines()
    header = summary[0].split(",")
    for line in summary[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row["model"] == label and row["name"] == "Aggregated":
            return float(row["rps"])
    raise RuntimeError(f"no Aggregated row for {label} in {run_dir} ({meta['run_id']})")


def mockserver_cmd(python: Path, port: int) -> list[str]:
    return [str(python), "-m", "mockserver", "--port", str(port)]


def run(quick: bool, base: str = DEFAULT_BASE) -> list[Section]:
    os.environ["PYTHONSAFEPATH"] = "1"   # each side imports its own tree (base_python)
    seconds = 4 if quick else 10
    rounds = 2 if quick else 3
    old, short = base_python(base)
    now = Path(sys.executable)
    sides = (("base", old), ("now", now))
    best: dict[tuple[str, str], float] = {}

    def keep(cell: str, side: str, value: float) -> None:
        best[(cell, side)] = max(best.get((cell, side), 0.0), value)
    try:
        for r in range(rounds):
            for side, python in (sides if r % 2 == 0 else sides[::-1]):
                port = free_port()
                with pinned(mockserver_cmd(python, port), port):
                    url = f"http://127.0.0.1:{port}"
                    if have_wrk():
                        keep("mockserver under wrk", side, wrk(url + "/", 50, seconds).rps)
                    keep("mockserver under our fast engine (this tree's)", side,
                         harness_rps(now, MODELS[0][0], MODELS[0][1], url, seconds))
            # load generators against one fixed target: nginx if there is one, else ours
            port = free_port()
            target = nginx(port) if nginx_available() else pinned(mockserver_cmd(now, port),
                                                                   port)
            with target:
                url = f"http://127.0.0.1:{port}"
                for model, label in MODELS:
                    for side, python in (sides if r % 2 == 0 else sides[::-1]):
                        keep(f"{label} load generation", side,
                             harness_rps(python, model, label, url, seconds))
    finally:
        drop_worktree(old)
    cells = list(dict.fromkeys(cell for cell, _ in best))
    table = [f"| measurement (requests/s) | base {short} | now | now / base |",
             "|---|---:|---:|---:|"]
    goals = []
    worst = min(best[(c, "now")] / best[(c, "base")] for c in cells)
    for cell in cells:
        b, n = best[(cell, "base")], best[(cell, "now")]
        table.append(f"| {cell} | {b:,.0f} | {n:,.0f} | {n / b:.2f}x |")
        goals.append((f"{cell}: now >= {NOISE:.2f}x base ({n / b:.2f}x)", n / b >= NOISE))
    target = "nginx (1 worker)" if nginx_available() else "this tree's mockserver"
    what = " (before the transport step)" if short.startswith(DEFAULT_BASE) else ""
    return [Section(f"Side by side with {short}{what}",
                    f"versus {short}: worst now/base = {worst:.2f}x", table, goals,
                    notes=f"Each cell is the best of {rounds} rounds of {seconds} s, the two "
                          "sides alternating in order; target on core 0, load on core 1. "
                          f"Load generation runs against {target}, 50 users.")]
