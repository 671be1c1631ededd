"""`harness` command (filled in by the scenarios issue)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("harness: not implemented yet", file=sys.stderr)
    return 2
