"""A worker's slice of the run: the Job (a client's input), as the coordinator divides it.

The coordinator divides concurrency, rate and request count across workers; a Job is
what one worker receives (as a plain dict over the wire), and the process model divides
it again across its load processes.
"""

from __future__ import annotations

import functools
from dataclasses import MISSING, asdict, dataclass, field, fields
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

from harness.core.failures import DEFAULT_MAX_BODY
from harness.core.steps import RequestSpec
from harness.stats import FLOW_PREFIX


class JobError(ValueError):
    """A Job from the wire that does not fit the Job: the worker refuses it in one line."""


@functools.cache
def _hints() -> dict[str, tuple[type, ...]]:
    """Each Job field's accepted runtime types, from its annotation (computed once: every
    Job from the wire is checked against it)."""
    out: dict[str, tuple[type, ...]] = {}
    for name, hint in get_type_hints(Job).items():
        origin = get_origin(hint)
        if origin in (UnionType, Union):
            types = tuple(get_origin(a) or a for a in get_args(hint))
        else:
            types = (origin or hint,)
        if float in types:
            types = (*types, int)   # msgpack sends 2.0 as 2
        out[name] = tuple(type(None) if t is None else t for t in types)
    return out


@dataclass(frozen=True)
class Job:
    model: str
    engine: str
    processes: int
    sub_model: str
    cpu_work: int
    url: str
    requests: list[dict[str, Any]]
    mode: str
    concurrency: int
    rate: float | None
    stages: list[list[float]]      # [[duration_s, target], ...], target already divided
    duration_s: float              # measured seconds (after warm-up)
    total_requests: int | None
    warmup_s: float
    timeout_s: float
    think_time_s: float
    seed: int
    label: str
    arrivals: str = "constant"     # open model: evenly spaced sends, or "poisson"
    # [target.tls] with its files' PEM text (scenario.TlsSpec as a dict); used when the
    # URL is https://
    tls: dict[str, Any] = field(default_factory=dict)
    handshake: str = "per-connection"   # or per-request, resume (scenario.HANDSHAKES)
    # journeys: [[flows]] with their steps (templates as text, compiled by each process),
    # [[data]] tables with their rows, and where this slice's users and streams start
    flows: list[dict[str, Any]] = field(default_factory=list)
    data: list[dict[str, Any]] = field(default_factory=list)
    cookies: bool = True
    max_body: int = DEFAULT_MAX_BODY   # bytes a flow step may capture; beyond: body_too_large
    max_memory: int = 0       # a load process's RSS ceiling in bytes (0: the default)
    user_offset: int = 0      # global index of this slice's first user (per-user data)
    stream_index: int = 0     # this load process among all of them (sequential data)
    stream_count: int = 1
    http: str = "1.1"         # the protocol spoken: "1.1" or "2" ("auto" is resolved first)
    streams: int = 1          # HTTP/2: users sharing one connection as concurrent streams

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Job:
        """A Job from the coordinator's map, checked against the dataclass's own fields
        (names and basic types): a crafted or garbled Job is a JobError of one line, never
        a TypeError deep in a load process."""
        if not isinstance(data, dict):
            raise JobError(f"expected a map, got {type(data).__name__}")
        known = {f.name: f for f in fields(cls)}
        for name in data:
            if name not in known:
                raise JobError(f"unknown field {str(name)[:40]!r}")
        hints = _hints()
        for name, f in known.items():
            if name not in data:
                if f.default is MISSING and f.default_factory is MISSING:
                    raise JobError(f"missing field {name!r}")
                continue
            allowed = hints[name]
            value = data[name]
            if isinstance(value, bool) and bool not in allowed:
                raise JobError(f"{name}: expected {allowed[0].__name__}, got a bool")
            if not isinstance(value, allowed):
                raise JobError(f"{name}: expected {allowed[0].__name__}, got "
                               f"{type(value).__name__}")
        return cls(**data)

    @property
    def specs(self) -> list[RequestSpec]:
        return [RequestSpec(r["name"], r["method"], r["path"],
                            tuple(tuple(h) for h in r["headers"]), r["body"], r["weight"],
                            tuple(r["expect_status"])) for r in self.requests]

    @property
    def result_names(self) -> list[str]:
        """The recorder's row names: requests, flow steps, then `flow:<name>` per flow."""
        return [r["name"] for r in self.requests] + \
            [st["name"] for f in self.flows for st in f["steps"]] + \
            [FLOW_PREFIX + f["name"] for f in self.flows]

    @property
    def weights(self) -> list[float]:
        """What the picker chooses among: each request, then each flow."""
        return [float(r["weight"]) for r in self.requests] + \
            [float(f["weight"]) for f in self.flows]

    @property
    def secure(self) -> bool:
        """The target speaks HTTPS."""
        return self.url.startswith("https://")

    @property
    def default_port(self) -> int:
        return 443 if self.secure else 80

    @property
    def host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        return parts.hostname or "127.0.0.1", parts.port or self.default_port

    @property
    def fresh_connections(self) -> bool:
        """A new connection for every request (handshake per-request or resume)."""
        return self.handshake != "per-connection"

    @property
    def base_path(self) -> str:
        return urlsplit(self.url).path.rstrip("/")

    def with_share(self, index: int, parts: int) -> Job:
        """This job split again (the process model's sub-processes)."""
        return Job(**{**asdict(self), **share_fields(self.concurrency, self.rate, self.stages,
                                                      self.total_requests, index, parts,
                                                      self.mode),
                      "seed": self.seed * 1009 + index,
                      "user_offset": self.user_offset + users_before(self.concurrency, index,
                                                                      parts),
                      "stream_index": self.stream_index * parts + index,
                      "stream_count": self.stream_count * parts})


def _split_int(total: int, index: int, parts: int) -> int:
    return total // parts + (1 if index < total % parts else 0)


def users_before(concurrency: int, index: int, parts: int) -> int:
    """How many users the parts before `index` hold: where this part's users start."""
    return sum(max(1, _split_int(concurrency, j, parts)) for j in range(index))


def share_fields(concurrency: int, rate: float | None, stages: list[list[float]],
                 total: int | None, index: int, parts: int, mode: str) -> dict[str, Any]:
    """One part's share of concurrency, rate, stage targets and count; never below one user."""
    stage_scale = 1.0 / parts
    return {
        "concurrency": max(1, _split_int(concurrency, index, parts)),
        "rate": None if rate is None else rate / parts,
        "stages": [[d, t * stage_scale if mode == "open" else t / parts] for d, t in stages],
        "total_requests": None if total is None else _split_int(total, index, parts),
    }
