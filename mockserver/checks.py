"""Input checks shared by the mockserver's config and the harness's scenarios: the one
number validator (both say "expected a number from 0 to 1, got ..." the same way, with
the field named), and reading a TOML/JSON document that may be hostile (not UTF-8,
nested thousands deep, huge)."""

from __future__ import annotations

import json
import math
import re
import tomllib
from pathlib import Path
from typing import Any

from mockserver.errors import ConfigError


def number(value: Any, field: str, lo: float = -math.inf, hi: float = math.inf, *,
           above: bool = False, integer: bool = False) -> Any:
    """`value` if it is a finite number (an int when `integer`) within [lo, hi] (lo
    excluded when `above`); else ConfigError naming `field`. Booleans are not numbers."""
    types = (int,) if integer else (int, float)
    ok = isinstance(value, types) and not isinstance(value, bool)
    if ok and isinstance(value, float):
        ok = math.isfinite(value)
    if ok:
        ok = (value > lo if above else value >= lo) and value <= hi
    if not ok:
        kind = "an integer" if integer else "a number"
        if math.isfinite(lo) and math.isfinite(hi):
            where = f"from {lo:g} to {hi:g}"
        elif math.isfinite(lo):
            where = "> 0" if above and lo == 0 else f"{'>' if above else '>='} {lo:g}"
        else:
            where = f"<= {hi:g}" if math.isfinite(hi) else ""
        raise ConfigError(field, f"expected {kind} {where}, got {value!r}".replace("  ", " "))
    return value


MAX_DEPTH = 32                # tables and arrays nested deeper than this are refused
MAX_DOCUMENT_BYTES = 4 << 20  # a scenario or routes file larger than this is refused
# A dotted key of more than MAX_DEPTH parts, where a key can stand: tomllib takes time
# quadratic in its length (20,000 parts: 6 s), so it is refused before parsing.
_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"[^"\n]*"|'[^'\n]*')"""
_DEEP_KEY = re.compile(rf"(?:^|[\[{{,])[ \t]*{_KEY_PART}(?:[ \t]*\.[ \t]*{_KEY_PART})"
                       rf"{{{MAX_DEPTH},}}", re.M)


def depth_problem(doc: Any) -> str | None:
    """'nested deeper than 32 levels at KEY' for a document that is, else None; walked
    without recursion (the document may be deeper than Python's stack)."""
    stack: list[tuple[Any, int, str]] = [(doc, 0, "")]
    while stack:
        node, depth, where = stack.pop()
        if depth > MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH} levels (at {where or 'the top'})"
        if isinstance(node, dict):
            stack.extend((v, depth + 1, f"{where}.{k}" if where else str(k))
                         for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, depth + 1, f"{where}[{i}]") for i, v in enumerate(node))
    return None


def parse_document(text: str, kind: str, limit: int = MAX_DOCUMENT_BYTES) -> Any:
    """TOML or JSON text -> a document, or ValueError with a one-line reason: invalid,
    too large, nested too deep (checked before the parser could take long or recurse)."""
    if len(text) > limit:
        raise ValueError(f"larger than {limit >> 20} MiB")
    if kind == "TOML" and (m := _DEEP_KEY.search(text)):
        line = text.count("\n", 0, m.start()) + 1
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels (a dotted key on line "
                         f"{line})")
    try:
        doc = json.loads(text) if kind.lower() == "json" else tomllib.loads(text)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"not valid {kind}: {exc}") from None
    if problem := depth_problem(doc):
        raise ValueError(problem)
    return doc


def read_document(path: Path, kind: str, limit: int = MAX_DOCUMENT_BYTES) -> Any:
    """A TOML or JSON file -> a document; ValueError naming what is wrong with it (cannot
    be read, not UTF-8 -- with the byte --, invalid, too large, too deep). At most
    `limit` + 1 bytes are read: /dev/zero or a FIFO never fills the memory."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise ValueError(f"cannot read: {exc.strerror}") from None
    if len(data) > limit:
        raise ValueError(f"larger than {limit >> 20} MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (byte {exc.start}: {data[exc.start]:#04x})") \
            from None
    return parse_document(text, kind, limit)
