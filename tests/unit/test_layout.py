"""The layout's promises: a small public surface, and no import cycle in either package
(imports under TYPE_CHECKING included; imports inside functions are deliberate and lazy)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def test_public_surface():
    import harness
    import mockserver
    from harness import HarnessError, Scenario, execute, load_scenario
    from harness.errors import RunError, ScenarioError, UsageError
    from mockserver import ConfigError, parse_config

    assert {"load_scenario", "Scenario", "execute", "HarnessError"} <= set(harness.__all__)
    assert {"parse_config", "ConfigError"} <= set(mockserver.__all__)
    assert issubclass(ScenarioError, UsageError) and issubclass(UsageError, HarnessError)
    assert issubclass(RunError, HarnessError) and callable(execute)
    scenario = load_scenario(ROOT / "scenarios" / "quickstart.toml")
    assert isinstance(scenario, Scenario)
    assert parse_config({"default": {"status": 204}}).default.status == 204
    try:
        parse_config({"default": {"status": 99}})
    except ConfigError as exc:
        assert exc.field == "default.status"
    else:
        raise AssertionError("status 99 was accepted")


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports at module level and in module-level if-blocks (TYPE_CHECKING, try)."""
    out: list[ast.Import | ast.ImportFrom] = []
    stack: list[ast.stmt] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            out.append(node)
        elif isinstance(node, ast.If | ast.Try):
            stack.extend(node.body + node.orelse + getattr(node, "handlers", []))
        elif isinstance(node, ast.ExceptHandler):
            stack.extend(node.body)
    return out


def import_graph() -> dict[str, set[str]]:
    files = {_module(p): p for pkg in ("harness", "mockserver")
             for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        for node in _top_level_imports(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files
                           else node.module for a in node.names])
            graph[module] |= {n for n in names if n in files and n != module}
    return graph


def find_cycle(graph: dict[str, Any]) -> list[str] | None:
    """The first cycle of a directed graph (node -> its successors), or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        for nxt in sorted(graph.get(node, ())):
            if (cycle := visit(nxt, path + [node])) is not None:
                return cycle
        done.add(node)
        return None

    for node in sorted(graph):
        if (cycle := visit(node, [])) is not None:
            return cycle
    return None


def test_no_import_cycle():
    graph = import_graph()
    assert "harness.control.coordinator" in graph and "mockserver.state" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_mockserver_knows_nothing_of_the_harness():
    graph = import_graph()
    for module, deps in graph.items():
        if module.startswith("mockserver"):
            assert not any(d.startswith("harness") for d in deps), (module, deps)


# -- rooms: the import graph collapsed to folders ----------------------------------------------

BASE = {"errors", "stats", "hdr"}   # harness/*.py modules below every room


def _room(module: str) -> str | None:
    """The room a module lives in: a harness folder, `base` (errors, stats, hdr), `top`
    (cli, run, recover, the package), or `mockserver`; None outside both packages."""
    parts = module.split(".")
    if parts[0] == "mockserver":
        return "mockserver"
    if parts[0] != "harness":
        return None
    if len(parts) == 1:
        return "top"
    if (ROOT / "harness" / parts[1]).is_dir():
        return parts[1]
    return "base" if parts[1] in BASE else "top"


def room_graph() -> dict[str, dict[str, set[str]]]:
    """room -> room it imports -> the imports that make the edge. Every import counts:
    module level, TYPE_CHECKING and those inside functions (lazy is still a dependency)."""
    out: dict[str, dict[str, set[str]]] = {}
    for path in (ROOT / "harness").rglob("*.py"):
        src = _room(_module(path))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" if (
                    ROOT / Path(*f"{node.module}.{a.name}".split("."))).is_dir()
                    else node.module for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                dst = _room(target)
                if dst is not None and dst != src:
                    out.setdefault(src, {}).setdefault(dst, set()).add(
                        f"{path.relative_to(ROOT)} -> {target}")
    return out


def test_no_cycle_between_rooms():
    """The harness's folders import one way (issue 21 found three cycles: scenario and
    clients, control and clients, control and reports): shared vocabulary lives in core/,
    below all of them."""
    graph = room_graph()
    assert {"core", "clients", "control", "scenario", "reports", "live"} <= set(graph)
    cycle = find_cycle(graph)
    if cycle is not None:
        edges = [sorted(graph[a][b])[0] for a, b in zip(cycle, cycle[1:], strict=False)]
        raise AssertionError("rooms in a cycle: " + " -> ".join(cycle) + "; " +
                             "; ".join(edges))


def test_nothing_below_imports_the_live_view():
    """The dashboard, /metrics and progress are read by the top (run, cli) only."""
    graph = room_graph()
    importers = {src for src, dsts in graph.items() if "live" in dsts}
    assert importers <= {"top"}, {src: sorted(graph[src]["live"]) for src in importers - {"top"}}


def test_core_imports_nothing_above_it():
    graph = room_graph()
    assert set(graph.get("core", {})) <= {"base"}, graph.get("core")


def test_transports_sit_below_the_clients():
    """A transport knows nothing of users, runs or reports: it imports only core/, the
    base modules and the HTTP/2 wire helpers it shares with the mock; and the clients
    never name a concrete transport -- they take it from
    the registry (core.registry.TRANSPORTS), so a new protocol is one module and one line."""
    graph = room_graph()
    assert set(graph.get("transports", {})) <= {"core", "base", "mockserver"}, \
        graph.get("transports")
    # of the mockserver, only the HTTP/2 wire helpers both ends of a connection share
    assert {e.rsplit(" -> ", 1)[1] for e in graph["transports"].get("mockserver", ())} <= \
        {"mockserver.h2frames"}, graph["transports"]["mockserver"]
    concrete = {edge for edge in graph.get("clients", {}).get("transports", set())
                if not edge.endswith(("transports.base", "transports.wire",
                                      "transports.tls"))}
    assert not concrete, sorted(concrete)


def test_every_transport_is_registered_and_is_a_transport():
    """The registry and the room agree: each entry names a Transport subclass of its own
    module in harness/transports/, and each protocol module there has an entry."""
    import importlib

    from harness.core.registry import MODELS, TRANSPORTS
    from harness.transports.base import Transport

    modules = set()
    for name, kind in TRANSPORTS.items():
        module, _, cls = kind.impl.partition(":")
        assert module.startswith("harness.transports."), (name, kind.impl)
        impl = getattr(importlib.import_module(module), cls)
        assert issubclass(impl, Transport) and impl is not Transport, (name, impl)
        modules.add(module.rsplit(".", 1)[1])
    protocol_modules = {p.stem for p in (ROOT / "harness" / "transports").glob("*.py")
                        if p.stem not in ("__init__", "base", "wire", "tls")}
    assert protocol_modules == modules
    for model, kind in MODELS.items():
        assert set(kind.transports) <= set(TRANSPORTS), model


def test_no_module_imports_another_modules_private_names():
    """What a module shares it names without an underscore (parse.py used to import
    eight private names from its siblings)."""
    private = []
    for path in (ROOT / "harness").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("harness"):
                private += [f"{path.relative_to(ROOT)}: {node.module}.{a.name}"
                            for a in node.names if a.name.startswith("_")]
    assert not private, private
