"""The mock server's configuration: default profile, routes, global faults, limits.

One dict shape serves the routes file (TOML or JSON), `PUT /_mock/config` and the
harness's `[target.mock]` table, so all three validate in the same place and report the
same field names. Parsing never half-applies: it builds a new frozen MockConfig or raises
ConfigError, and the server swaps configs atomically.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fnmatch import translate
from pathlib import Path
from typing import Any

from mockserver.checks import number, read_document
from mockserver.errors import ConfigError
from mockserver.faults import Faults, parse_faults
from mockserver.http import METHODS
from mockserver.latency import LatencyModel, parse_latency
from mockserver.queue import QueueSpec, parse_queue


@dataclass(frozen=True)
class Profile:
    """What a matched request gets: latency, status and a body of a given size."""

    latency: LatencyModel | None = None
    status: int = 200
    body_bytes: int = 2
    faults: Faults | None = None  # None: the global faults apply
    queue: QueueSpec | None = None  # a queueing station in front of it (queue.py)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "latency": self.latency.to_dict() if self.latency else {"dist": "fixed", "ms": 0},
            "status": self.status,
            "body_bytes": self.body_bytes,
        }
        if self.faults is not None:
            out["faults"] = self.faults.to_dict()
        if self.queue is not None:
            out["queue"] = self.queue.to_dict()
        return out


_PROFILE_KEYS = {"latency", "status", "body_bytes", "faults", "queue"}


def parse_profile(raw: Any, name: str, extra_keys: frozenset[str] = frozenset()) -> Profile:
    if not isinstance(raw, dict):
        raise ConfigError(name, f"expected a table, got {raw!r}")
    for key in raw:
        if key not in _PROFILE_KEYS | extra_keys:
            allowed = ", ".join(sorted(_PROFILE_KEYS | extra_keys))
            raise ConfigError(f"{name}.{key}", f"unknown key (expected one of {allowed})")
    latency = None
    if "latency" in raw:
        latency = parse_latency(raw["latency"], f"{name}.latency")
        if latency.to_dict() == {"dist": "fixed", "ms": 0.0}:
            latency = None  # the zero-delay fast path
    return Profile(
        latency=latency,
        status=number(raw.get("status", 200), f"{name}.status", 200, 599, integer=True),
        body_bytes=number(raw.get("body_bytes", 2), f"{name}.body_bytes", 0, 64 << 20,
                          integer=True),
        faults=parse_faults(raw["faults"], f"{name}.faults") if "faults" in raw else None,
        queue=parse_queue(raw["queue"], f"{name}.queue") if "queue" in raw else None,
    )


@dataclass(frozen=True)
class Route:
    """A path pattern (glob: `*` matches anything, `/api/*`) with its own profile."""

    path: str
    method: str | None
    profile: Profile
    regex: re.Pattern[str] = field(compare=False, repr=False)

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and bool(self.regex.match(path))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, **self.profile.to_dict()}
        if self.method:
            out["method"] = self.method
        return out


MAX_ROUTES = 1000   # each unmatched request tries every route: keep that bounded


@dataclass(frozen=True)
class Limits:
    max_header_bytes: int = 16 * 1024
    max_body_bytes: int = 1 << 20       # the admin API is never held to less than 1 MiB
    idle_timeout_s: float = 30.0        # a kept-alive connection with nothing to do
    request_timeout_s: float = 15.0     # to receive a whole request, once it has begun
    max_connections: int = 10_000       # beyond it the oldest waiting connection goes
    max_pipeline: int = 128

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in _LIMIT_BOUNDS}


# limit -> (minimum, maximum); the seconds are floats, the rest integers
_LIMIT_BOUNDS: dict[str, tuple[float, float]] = {
    "max_header_bytes": (256, 1 << 20), "max_body_bytes": (0, 1 << 30),
    "idle_timeout_s": (0.1, 3600), "request_timeout_s": (0.1, 3600),
    "max_connections": (16, 1_000_000), "max_pipeline": (1, 10_000),
}


def parse_limits(raw: Any, name: str) -> Limits:
    if not isinstance(raw, dict):
        raise ConfigError(name, f"expected a table, got {raw!r}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in _LIMIT_BOUNDS:
            raise ConfigError(f"{name}.{key}",
                              f"unknown key (expected one of {', '.join(_LIMIT_BOUNDS)})")
        lo, hi = _LIMIT_BOUNDS[key]
        seconds = key.endswith("_s")
        checked = number(value, f"{name}.{key}", lo, hi, integer=not seconds)
        values[key] = float(checked) if seconds else checked
    return Limits(**values)


@dataclass(frozen=True)
class MockConfig:
    default: Profile = Profile()
    faults: Faults = Faults()
    routes: tuple[Route, ...] = ()
    limits: Limits = Limits()

    def to_dict(self) -> dict[str, Any]:
        return {
            "default": self.default.to_dict(),
            "faults": self.faults.to_dict(),
            "routes": [r.to_dict() for r in self.routes],
            "limits": self.limits.to_dict(),
        }


def parse_config(raw: Any, name: str = "config") -> MockConfig:
    """Validate a whole config dict; raises ConfigError naming the first bad field."""
    if not isinstance(raw, dict):
        raise ConfigError(name, f"expected an object, got {type(raw).__name__}")
    allowed = {"default", "faults", "routes", "limits"}
    for key in raw:
        if key not in allowed:
            raise ConfigError(key, f"unknown key (expected one of {', '.join(sorted(allowed))})")
    routes_raw = raw.get("routes", [])
    if not isinstance(routes_raw, list) or len(routes_raw) > MAX_ROUTES:
        raise ConfigError("routes", f"expected a list of at most {MAX_ROUTES} tables, got "
                                    + (f"{len(routes_raw)}" if isinstance(routes_raw, list)
                                       else f"{routes_raw!r:.60}"))
    routes = []
    for i, item in enumerate(routes_raw):
        where = f"routes[{i}]"
        profile = parse_profile(item, where, frozenset({"path", "method"}))
        path = item.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigError(f"{where}.path", f"expected a path starting with '/', got {path!r}")
        method = item.get("method")
        if method is not None and (not isinstance(method, str)
                                   or method.upper() not in METHODS):
            raise ConfigError(f"{where}.method",
                              f"expected one of {', '.join(sorted(METHODS))}, got {method!r}")
        routes.append(Route(path, method.upper() if method else None, profile,
                            re.compile(translate(path))))
    return MockConfig(
        default=parse_profile(raw.get("default", {}), "default"),
        faults=parse_faults(raw.get("faults", {}), "faults"),
        routes=tuple(routes),
        limits=parse_limits(raw.get("limits", {}), "limits"),
    )


def load_config_file(path: str | Path) -> MockConfig:
    """Read a routes file, TOML or JSON by extension; errors name the file."""
    path = Path(path)
    try:
        raw = read_document(path, "json" if path.suffix == ".json" else "TOML")
    except ValueError as exc:
        raise ConfigError(str(path), str(exc)) from None
    try:
        return parse_config(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.field}", exc.message) from None
