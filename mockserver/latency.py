"""Latency models: each a small class behind one interface, validated and seedable.

A model answers `sample(rng)` with a delay in seconds. Parameters are given in milliseconds
(keys end in `_ms`) because that is how people think about request latency; `alpha` and
mixture weights are unit-less. `parse_latency` builds a model from a dict (config files,
the admin API, scenario `[target.mock]`), `parse_latency_header` from the compact form a
request may send in `X-Mock-Latency: lognormal;median=50;p99=200`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Protocol

from mockserver.checks import number
from mockserver.errors import ConfigError

# z such that P(Z <= z) = 0.99 for a standard normal: lognormal(median, p99) -> sigma.
Z99 = 2.3263478740408408


class LatencyModel(Protocol):
    """The one interface every latency distribution implements."""

    def sample(self, rng: random.Random) -> float:
        """One delay in seconds (>= 0)."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """The spec this model was built from, so a config round-trips through the API."""
        ...


# One cap for every latency source (profiles, routes, the X-Mock-Latency header, /delay):
# ten minutes is already absurd for a mock, and a bound keeps every draw finite.
MAX_LATENCY_MS = 600_000.0


def _num(spec: dict[str, Any], key: str, field: str, *, minimum: float = 0.0,
         strict: bool = False, default: float | None = None,
         maximum: float = MAX_LATENCY_MS) -> float:
    if key not in spec:
        if default is not None:
            return default
        raise ConfigError(f"{field}.{key}", "is required")
    return float(number(spec[key], f"{field}.{key}", minimum, maximum, above=strict))


def delay_s(model: LatencyModel, rng: random.Random) -> float:
    """One draw in seconds, never past the cap (a lognormal or normal tail could be)."""
    return min(model.sample(rng), MAX_LATENCY_MS / 1000.0)


class _Params:
    """to_dict for the distributions given by their parameters alone: the dataclass fields
    are the spec's keys, so adding a parameter cannot forget the round trip."""

    name: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        return {"dist": self.name, **{f.name: getattr(self, f.name) for f in fields(self)}}


def _check_keys(spec: dict[str, Any], allowed: set[str], field: str) -> None:
    for key in spec:
        if key not in allowed and key != "dist":
            raise ConfigError(f"{field}.{key}",
                              f"unknown key (expected one of {', '.join(sorted(allowed))})")


@dataclass(frozen=True)
class Fixed(_Params):
    ms: float
    name: ClassVar[str] = "fixed"

    @classmethod
    def parse(cls, spec: dict[str, Any], field: str) -> Fixed:
        _check_keys(spec, {"ms"}, field)
        return cls(_num(spec, "ms", field))

    def sample(self, rng: random.Random) -> float:
        return self.ms / 1000.0


@dataclass(frozen=True)
class Uniform(_Params):
    min_ms: float
    max_ms: float
    name: ClassVar[str] = "uniform"

    @classmethod
    def parse(cls, spec: dict[str, Any], field: str) -> Uniform:
        _check_keys(spec, {"min_ms", "max_ms"}, field)
        lo, hi = _num(spec, "min_ms", field), _num(spec, "max_ms", field)
        if hi < lo:
            raise ConfigError(f"{field}.max_ms", f"expected >= min_ms ({lo}), got {hi}")
        return cls(lo, hi)

    def sample(self, rng: random.Random) -> float:
        return rng.uniform(self.min_ms, self.max_ms) / 1000.0


@dataclass(frozen=True)
class Normal(_Params):
    """Normal truncated at 0: negative draws are redrawn, so there is no spike at zero."""

    mean_ms: float
    sd_ms: float
    name: ClassVar[str] = "normal"

    @classmethod
    def parse(cls, spec: dict[str, Any], field: str) -> Normal:
        _check_keys(spec, {"mean_ms", "sd_ms"}, field)
        return cls(_num(spec, "mean_ms", field), _num(spec, "sd_ms", field))

    def sample(self, rng: random.Random) -> float:
        for _ in range(64):
            value = rng.gauss(self.mean_ms, self.sd_ms)
            if value >= 0:
                return value / 1000.0
        return 0.0  # only reachable when mean is many sd below zero


@dataclass(frozen=True)
class LogNormal(_Params):
    """Given by median and p99, the two numbers people read off a latency dashboard."""

    median_ms: float
    p99_ms: float
    name: ClassVar[str] = "lognormal"

    @classmethod
    def parse(cls, spec: dict[str, Any], field: str) -> LogNormal:
        _check_keys(spec, {"median_ms", "p99_ms"}, field)
        median = _num(spec, "median_ms", field, strict=True)
        p99 = _num(spec, "p99_ms", field, strict=True)
        if p99 < median:
            raise ConfigError(f"{field}.p99_ms", f"expected >= median_ms ({median}), got {p99}")
        return cls(median, p99)

    @property
    def mu(self) -> float:
        return math.log(self.median_ms)

    @property
    def sigma(self) -> float:
        return (math.log(self.p99_ms) - math.log(self.median_ms)) / Z99

    def sample(self, rng: random.Random) -> float:
        return rng.lognormvariate(self.mu, self.sigma) / 1000.0


@dataclass(frozen=True)
class Exponential(_Params):
    mean_ms: float
    name: ClassVar[str] = "exponential"

    @classmethod
    def parse(cls, spec: dict[str, Any], field: str) -> Exponential:
        _check_keys(spec, {"mean_ms"}, field)
        return cls(_num(spec, "mean_ms", field, strict=True))

    def sample(self, rng: random.Random) -> float:
        return rng.expovariate(1.0 / self.mean_ms) / 1000.0


@dataclass(frozen=True)
class Pareto(_Params):
    """Heavy tail from scale * Pareto(alpha), capped so one draw cannot stall a run."""

    scale_ms: float
    alpha: float
    cap_ms: float
    name: ClassVar[str] = "pareto"

    @classmethod
    def parse(cls, spec: dict[str, Any], field: str) -> Pareto:
        _check_keys(spec, {"scale_ms", "alpha", "cap_ms"}, field)
        scale = _num(spec, "scale_ms", field, strict=True)
        alpha = _num(spec, "alpha", field, strict=True, maximum=1000.0)
        cap = _num(spec, "cap_ms", field,
                   default=min(max(scale * 100.0, 10_000.0), MAX_LATENCY_MS))
        if cap < scale:
            raise ConfigError(f"{field}.cap_ms", f"expected >= scale_ms ({scale}), got {cap}")
        return cls(scale, alpha, cap)

    def sample(self, rng: random.Random) -> float:
        return min(self.scale_ms * rng.paretovariate(self.alpha), self.cap_ms) / 1000.0


@dataclass(frozen=True)
class Mixture:
    """Weighted mixture: e.g. 95% fast cache hits, 5% slow misses."""

    components: tuple[tuple[float, LatencyModel], ...]
    name: ClassVar[str] = "mixture"

    @classmethod
    def parse(cls, spec: dict[str, Any], field: str) -> Mixture:
        _check_keys(spec, {"components"}, field)
        raw = spec.get("components")
        if not isinstance(raw, list) or not raw:
            raise ConfigError(f"{field}.components", "expected a non-empty list of tables")
        parts: list[tuple[float, LatencyModel]] = []
        for i, comp in enumerate(raw):
            sub = f"{field}.components[{i}]"
            if not isinstance(comp, dict):
                raise ConfigError(sub, f"expected a table, got {comp!r}")
            weight = _num(comp, "weight", sub, strict=True, maximum=1e6)
            rest = {k: v for k, v in comp.items() if k != "weight"}
            if rest.get("dist") == "mixture":
                raise ConfigError(f"{sub}.dist", "mixtures cannot nest")
            parts.append((weight, parse_latency(rest, sub)))
        total = sum(w for w, _ in parts)
        return cls(tuple((w / total, m) for w, m in parts))

    def sample(self, rng: random.Random) -> float:
        pick = rng.random()
        for weight, model in self.components:
            pick -= weight
            if pick < 0:
                return model.sample(rng)
        return self.components[-1][1].sample(rng)

    def to_dict(self) -> dict[str, Any]:
        return {"dist": self.name,
                "components": [{"weight": w, **m.to_dict()} for w, m in self.components]}


DISTRIBUTIONS: dict[str, Any] = {m.name: m for m in (Fixed, Uniform, Normal, LogNormal, Exponential,
                                               Pareto, Mixture)}


def parse_latency(spec: Any, field: str = "latency") -> LatencyModel:
    """Build a latency model from its dict spec; raises ConfigError naming the bad field."""
    if isinstance(spec, int | float) and not isinstance(spec, bool):
        spec = {"dist": "fixed", "ms": spec}
    if not isinstance(spec, dict):
        raise ConfigError(field,
                          f"expected a table like {{dist = \"fixed\", ms = 10}}, got {spec!r}")
    dist = spec.get("dist")
    if not isinstance(dist, str) or dist not in DISTRIBUTIONS:
        raise ConfigError(f"{field}.dist",
                          f"expected one of {', '.join(DISTRIBUTIONS)}, got {dist!r}")
    return DISTRIBUTIONS[dist].parse(spec, field)


def parse_latency_header(value: str) -> LatencyModel:
    """Parse `lognormal;median=50;p99=200` (ms implied) or a bare number of ms."""
    value = value.strip()
    try:
        ms = float(value)
    except ValueError:
        pass
    else:
        return Fixed.parse({"ms": ms}, "X-Mock-Latency")
    parts = [p.strip() for p in value.split(";") if p.strip()]
    if not parts or len(value) > 256:
        raise ConfigError("X-Mock-Latency", 'expected a number of ms or a spec like '
                                            '"lognormal;median=50;p99=200"')
    name, *pairs = parts
    spec: dict[str, Any] = {"dist": name}
    allowed = DISTRIBUTIONS[name].__dataclass_fields__ if name in DISTRIBUTIONS else {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise ConfigError(f"X-Mock-Latency.{key}", "expected key=value")
        key = key.strip()
        if key not in allowed and f"{key}_ms" in allowed:
            key = f"{key}_ms"
        try:
            spec[key] = float(raw)
            if not math.isfinite(spec[key]):
                raise ValueError(raw)
        except ValueError:
            raise ConfigError(f"X-Mock-Latency.{key}", f"expected a number, got {raw!r}") from None
    if name == "mixture":
        raise ConfigError("X-Mock-Latency.dist", "mixtures are not available in the header")
    return parse_latency(spec, "X-Mock-Latency")
