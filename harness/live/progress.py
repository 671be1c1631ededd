"""Live progress: a rich table on a terminal, a plain line every few seconds otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from harness.core.outcome import ModelResult


def _latest(result: ModelResult) -> tuple[str, str, str, int]:
    """ok/s, failed/s and worst worker p99 of the newest complete second (dashes until
    there is one); requests so far."""
    total = sum(t.requests for t in result.tallies.values()) + result.folded_requests
    newest = max(result.tallies, default=0)
    tally = result.tallies.get(newest - 1) if newest > 0 else None
    if tally is None:
        return "-", "-", "-", total
    p99 = f"{tally.worst_p99_us / 1000:.2f}" if tally.requests else "-"
    return str(tally.requests - tally.errors), str(tally.errors), p99, total


class Progress:
    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.tty = sys.stdout.isatty()
        self.console = Console(stderr=False)
        self.live: Live | None = None
        self.last_plain = 0.0
        self.rows: dict[str, tuple[float, str, str, str, int]] = {}

    def __call__(self, result: ModelResult, elapsed: float, _: dict[str, Any]) -> None:
        if self.quiet:
            return
        ok, failed, p99, total = _latest(result)
        self.rows[result.label] = (elapsed, ok, failed, p99, total)
        if self.tty:
            if self.live is None:
                self.live = Live(self._table(), console=self.console, refresh_per_second=4)
                self.live.start()
            self.live.update(self._table())
        elif time.monotonic() - self.last_plain >= 2.0:
            self.last_plain = time.monotonic()
            print(f"{result.label}: {elapsed:5.1f}s  {ok:>7} ok/s  "
                  f"{failed:>5} failed/s  p99 {p99} ms  total {total}", flush=True)

    def _table(self) -> Table:
        table = Table("model", "elapsed", "ok/s", "failed/s", "p99 ms (worst worker)",
                      "requests")
        for label, (elapsed, ok, failed, p99, total) in self.rows.items():
            table.add_row(label, f"{elapsed:.1f}s", ok, failed, p99, str(total))
        return table

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
