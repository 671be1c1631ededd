"""The knee of the latency-throughput curve: where p99 starts to climb steeply against the
achieved rate -- the maximum curvature, found by Kneedle (Satopaa et al. 2011) through the
`kneed` package, its authors' own implementation."""

from __future__ import annotations

from collections.abc import Sequence


def knee(x: Sequence[float], y: Sequence[float]) -> float | None:
    """The x of the knee of an increasing, convex curve (latency rising ever faster with
    load); None with fewer than three distinct points or no knee."""
    points = sorted({float(a): float(b) for a, b in zip(x, y, strict=True)}.items())
    if len(points) < 3:
        return None
    from kneed import KneeLocator  # imported when a search ends: the run never pays it
    xs, ys = zip(*points, strict=True)
    found = KneeLocator(list(xs), list(ys), S=1.0, curve="convex", direction="increasing",
                        online=True).knee
    return None if found is None else float(found)
