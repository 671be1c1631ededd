"""The one number validator: a config, a latency spec and a harness scenario all say
"expected a number from 0 to 1, got ..." the same way, with the field named."""

from __future__ import annotations

import math
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
