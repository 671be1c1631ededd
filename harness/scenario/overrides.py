"""`--set`, `--unset` and `${ENV}`: applied to the raw tables before validation, so they
are validated like everything else."""

from __future__ import annotations

import os
import re
import tomllib
from typing import Any

from harness.errors import ScenarioError
from harness.scenario.spec import (
    ENV_REF,
)


def apply_set(raw: dict[str, Any], assignment: str, source: str) -> None:
    """`key.path=value`: value parsed as TOML (numbers, booleans, arrays) else a string."""
    path, sep, text = assignment.partition("=")
    if not sep or not path.strip():
        raise ScenarioError(source, f"--set {assignment}", "expected KEY.PATH=VALUE")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except ValueError:   # TOMLDecodeError, and an integer of more than 4,300 digits
        value = text
    parts = path.strip().split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ScenarioError(source, f"--set {path}", f"no list item {part}")
            node = node[int(part)]
        else:
            node = node.setdefault(part, {})
        if not isinstance(node, dict | list):
            raise ScenarioError(source, f"--set {path}",
                                f"{'.'.join(parts[:i + 1])} is not a table")
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ScenarioError(source, f"--set {path}", f"no list item {last}")
        node[int(last)] = value
    else:
        node[last] = value


def apply_unset(raw: dict[str, Any], path: str, source: str) -> None:
    """`key.path`: remove that key (e.g. load.rate, to make an open-model file closed)."""
    parts = path.strip().split(".")
    node: Any = raw
    for part in parts[:-1]:
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise ScenarioError(source, f"--unset {path}", "no such key in the scenario")
    last = parts[-1]
    if isinstance(node, dict) and last in node:
        del node[last]
    elif isinstance(node, list) and last.isdigit() and int(last) < len(node):
        del node[int(last)]
    else:
        raise ScenarioError(source, f"--unset {path}", "no such key in the scenario")


def _key(parts: tuple[str | int, ...]) -> str:
    """("requests", 0, "path") -> "[[requests]][0].path", as the other messages name keys."""
    if not parts:
        return "scenario"
    head, *rest = parts
    out = f"[[{head}]]" if rest and isinstance(rest[0], int) else f"[{head}]"
    for part in rest:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


_ENV_OR_ESCAPE = re.compile(r"\$\$\{|" + ENV_REF.pattern)


def interpolate(value: Any, source: str, parts: tuple[str | int, ...] = ()) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string; a missing VAR is an error.
    `$${` is a literal `${` (as in docker compose): how recorded text keeps one."""
    if isinstance(value, dict):
        return {k: interpolate(v, source, (*parts, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, source, (*parts, i)) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        def sub(m: re.Match[str]) -> str:
            if m.group(0) == "$${":
                return "${"
            env = os.environ.get(m.group(1))
            if env is None:
                if m.group(2) is None:
                    raise ScenarioError(source, _key(parts),
                                        f"environment variable {m.group(1)} is not set "
                                        "(use ${VAR:-default})")
                return m.group(2)
            return env
        return _ENV_OR_ESCAPE.sub(sub, value)
    return value


# -- sections ----------------------------------------------------------------------------------
