"""The small validators every section uses: one error line naming the file and the key."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.errors import ScenarioError
from harness.scenario.spec import (
    DURATION,
    MAX_DURATION_S,
    MAX_RATE,
    MAX_USERS,
    UNITS,
    size_bytes,
)
from mockserver import checks
from mockserver.errors import ConfigError


class Ctx:
    def __init__(self, source: str) -> None:
        self.source = source
        self.notes: list[str] = []   # what validation says without refusing

    def fail(self, key: str, message: str) -> ScenarioError:
        return ScenarioError(self.source, key, message)

    def table(self, raw: Any, key: str) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise self.fail(key, f"expected a table, got {show(raw)}")
        return raw

    def entries(self, raw: list[Any], key: str, allowed: tuple[str, ...]
                ) -> Iterator[tuple[int, str, dict[str, Any]]]:
        """An array of tables, each checked to be a table of `allowed` keys: (index, its
        name for messages like `[[requests]][2]`, the table). Not a list (`--set
        load.stages=5`): one line saying what was expected."""
        if not isinstance(raw, list):
            raise self.fail(key, f"expected an array of tables, got {show(raw)}")
        for i, item in enumerate(raw):
            where = f"{key}[{i}]"
            table = self.table(item, where)
            self.keys(table, allowed, where)
            yield i, where, table

    def keys(self, raw: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
        for key in raw:
            if key not in allowed:
                raise self.fail(f"{where}.{key}",
                                f"unknown key (expected one of {', '.join(allowed)})")

    def number(self, raw: Any, key: str, *, positive: bool = True, minimum: float = 0,
               maximum: float = MAX_RATE) -> float:
        return float(self._checked(raw, key, minimum, maximum, above=positive))

    def integer(self, raw: Any, key: str, minimum: int = 1, maximum: int = MAX_USERS) -> int:
        return self._checked(raw, key, minimum, maximum, integer=True)

    def _checked(self, raw: Any, key: str, minimum: float, maximum: float,
                 **kwargs: Any) -> Any:
        """mockserver's number check, its message under this file's and key's name."""
        try:
            return checks.number(raw, key, minimum, maximum, **kwargs)
        except ConfigError as exc:
            raise self.fail(key, exc.message) from None

    def string(self, raw: Any, key: str, pattern: re.Pattern[str] | None = None,
               expected: str = "a non-empty string") -> str:
        if not isinstance(raw, str) or not raw or (pattern and not pattern.fullmatch(raw)):
            raise self.fail(key, f"expected {expected}, got {show(raw)}")
        return raw

    def size(self, raw: Any, key: str, minimum: int, maximum: int) -> int:
        value = size_bytes(raw)
        if value is None or not minimum <= value <= maximum:
            raise self.fail(key, f'expected a size like "1MiB", "512KiB" or a number of '
                                 f"bytes, from {minimum} to {maximum}, got {show(raw)}")
        return value

    def duration(self, raw: Any, key: str, *, allow_zero: bool = False,
                 maximum: float = MAX_DURATION_S) -> float:
        seconds: float | None = None
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            seconds = float(raw)
        elif isinstance(raw, str) and (m := DURATION.match(raw)):
            seconds = float(m.group(1)) * UNITS[m.group(2)]
        if seconds is None or not math.isfinite(seconds) or seconds < 0 \
                or (seconds == 0 and not allow_zero) or seconds > maximum:
            raise self.fail(key, f'expected a duration like "10s", "500ms" or "2m", '
                                 f"at most {maximum:g} s, got {show(raw)}")
        return seconds


SHOWN_MAX = 60


def show(value: Any) -> str:
    """A value as an error message quotes it: on one line (control characters, CR and LF
    escaped, so neither a second line nor a terminal escape sequence gets through), cut to
    SHOWN_MAX characters (a 1 MB value is not echoed whole)."""
    if isinstance(value, str):
        cut = value[:SHOWN_MAX]
        text = "".join(c if c.isprintable() and c != '"' else
                       '\\"' if c == '"' else c.encode("unicode_escape").decode("ascii")
                       for c in cut)
        return f'"{text}"' + ("..." if len(value) > SHOWN_MAX else "")
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value)




def read_file(ctx: Ctx, key: str, path: Path, limit: int, what: str) -> bytes:
    """A file a scenario names (relative to it), at most `limit` bytes: its contents, or
    one line naming the key and the path."""
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise ctx.fail(key, f"no such file: {path}") from None
    except OSError as exc:
        raise ctx.fail(key, f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise ctx.fail(key, f"expected {what} of at most {limit >> 20} MiB: {path}")
    return data
