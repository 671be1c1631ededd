"""`harness compare` on two capacity runs: each model's capacity side by side. A change
counts only where the two searches' brackets do not overlap -- within them, both runs
found the same capacity to the precision they searched at."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _capacity(arg: str) -> dict[str, Any] | None:
    """A run's meta.json `capacity` (the run directory, or a file in it); None for a run
    that searched nothing, or an input that is not one of our runs."""
    path = Path(arg)
    meta = (path if path.is_dir() else path.parent) / "meta.json"
    try:
        found = json.loads(meta.read_text()).get("capacity")
    except (OSError, ValueError, AttributeError):
        return None
    return found if isinstance(found, dict) and found else None


def _shown(found: dict[str, Any]) -> str:
    if found.get("client_bound"):
        low = found.get("low")
        return f">= {low:,.0f} (client-bound)" if low else "client-bound"
    cap = found.get("capacity_rps")
    return "none" if cap is None else f"{cap:,.0f} req/s"


def _bracket(found: dict[str, Any]) -> tuple[float, float] | None:
    low, high = found.get("low"), found.get("high")
    if found.get("over") == "concurrency" or found.get("capacity_rps") is None:
        cap = found.get("capacity_rps")
        return None if cap is None else (cap, cap)
    return (low, high if high is not None else low) if low is not None else None


def capacity_lines(inputs: list[str]) -> list[str]:
    """One line per model both runs searched: base, new, the change, and whether it is
    beyond the searches' precision. Empty when the first run is no capacity run."""
    base = _capacity(inputs[0])
    if base is None:
        return []
    lines = []
    for arg in inputs[1:]:
        new = _capacity(arg)
        if new is None:
            lines.append(f"capacity: {arg} searched no capacity: not compared")
            continue
        for model in base:
            if model not in new:
                continue
            a, b = base[model], new[model]
            text = f"capacity {model}: {_shown(a)} -> {_shown(b)}"
            ca, cb = a.get("capacity_rps"), b.get("capacity_rps")
            ra, rb = _bracket(a), _bracket(b)
            if ca and cb and not (a.get("client_bound") or b.get("client_bound")):
                change = 100 * (cb - ca) / ca
                apart = ra is not None and rb is not None and (rb[0] > ra[1] or ra[0] > rb[1])
                text += f" ({change:+.1f}%, " + ("beyond the searches' brackets)" if apart
                                                 else "within the searches' precision)")
            lines.append(text)
    return lines
