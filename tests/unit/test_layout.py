"""The layout's promises: a small public surface, and no import cycle in either package
(imports under TYPE_CHECKING included; imports inside functions are deliberate and lazy)."""

from __future__ import annotations

import ast
from pathlib import Path

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


def test_no_import_cycle():
    graph = import_graph()
    assert "harness.control.coordinator" in graph and "mockserver.state" in graph
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycle = path[path.index(node):] + [node]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if node in done:
            return
        for nxt in sorted(graph[node]):
            visit(nxt, path + [node])
        done.add(node)

    for module in sorted(graph):
        visit(module, [])


def test_mockserver_knows_nothing_of_the_harness():
    graph = import_graph()
    for module, deps in graph.items():
        if module.startswith("mockserver"):
            assert not any(d.startswith("harness") for d in deps), (module, deps)
