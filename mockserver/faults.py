"""Faults: what may go wrong on purpose, how a config names it, and how it is injected.

A new fault is this file: a field (its probability) and its extras on Faults, an entry in
_FAULT_EXTRAS, and a branch in `inject`. Each fault is drawn independently per request;
a connection-level fault (reset, hang, malformed) replaces the reply.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from mockserver.checks import number
from mockserver.errors import ConfigError
from mockserver.http import CLOSE, HANG, RESET, Reply, body_bytes
from mockserver.latency import MAX_LATENCY_MS

if TYPE_CHECKING:
    from mockserver.stats import Stats


class Answer(Protocol):
    """What a fault may change of a route's answer (routes.Answer has these fields; named
    here so faults.py need not import routes, which imports the config, which imports us)."""

    status: int
    delay: float
    body: bytes | None
    body_len: int
    drip: tuple[int, float] | None
    chunked: bool

# A response no HTTP parser accepts (the malformed fault).
MALFORMED_RESPONSE = b"HTTP/1.1 2x0 N\x00T-HTTP\r\nContent-Length: banana\r\n\r\n{{{"


@dataclass(frozen=True)
class Faults:
    """Probabilities (0..1) of each injected fault, drawn independently per request."""

    error: float = 0.0
    error_status: int = 500
    reset: float = 0.0
    hang: float = 0.0
    hang_ms: float = 5000.0
    malformed: float = 0.0
    slow_body: float = 0.0
    slow_body_bytes_per_s: float = 1024.0
    spike: float = 0.0
    spike_ms: float = 1000.0

    @property
    def any(self) -> bool:
        return bool(self.error or self.reset or self.hang or self.malformed or self.slow_body
                    or self.spike)

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": {"p": self.error, "status": self.error_status},
            "reset": {"p": self.reset},
            "hang": {"p": self.hang, "ms": self.hang_ms},
            "malformed": {"p": self.malformed},
            "slow_body": {"p": self.slow_body, "bytes_per_s": self.slow_body_bytes_per_s},
            "spike": {"p": self.spike, "ms": self.spike_ms},
        }


# fault kind -> {extra key: (Faults attribute, minimum, maximum)}
_FAULT_EXTRAS: dict[str, dict[str, tuple[str, float, float]]] = {
    "error": {"status": ("error_status", 400, 599)},
    "reset": {},
    "hang": {"ms": ("hang_ms", 0, 60_000)},
    "malformed": {},
    "slow_body": {"bytes_per_s": ("slow_body_bytes_per_s", 1, 1e12)},
    "spike": {"ms": ("spike_ms", 0, MAX_LATENCY_MS)},
}


def parse_faults(raw: Any, name: str) -> Faults:
    if not isinstance(raw, dict):
        raise ConfigError(name, f"expected a table of fault kinds, got {raw!r}")
    values: dict[str, Any] = {}
    for kind, spec in raw.items():
        where = f"{name}.{kind}"
        if kind not in _FAULT_EXTRAS:
            raise ConfigError(where, f"unknown fault (expected one of {', '.join(_FAULT_EXTRAS)})")
        if not isinstance(spec, dict):
            spec = {"p": spec}
        extras = _FAULT_EXTRAS[kind]
        for key, value in spec.items():
            if key == "p":
                values[kind] = float(number(value, f"{where}.p", 0, 1))
            elif key in extras:
                attr, lo, hi = extras[key]
                checked = number(value, f"{where}.{key}", lo, hi,
                                 integer=attr == "error_status")
                values[attr] = checked if attr == "error_status" else float(checked)
            else:
                allowed = ", ".join(["p", *extras])
                raise ConfigError(f"{where}.{key}", f"unknown key (expected one of {allowed})")
    return Faults(**values)


def inject(answer: Answer, faults: Faults, rng: random.Random, stats: Stats) -> Reply | None:
    """Draw each fault: a connection-level one returns the Reply that replaces the answer;
    the others change `answer` in place (status, delay, a paced body) and return None."""
    rnd = rng.random
    if faults.reset and rnd() < faults.reset:
        stats.fault("reset")
        return Reply(delay=answer.delay, action=RESET)
    if faults.hang and rnd() < faults.hang:
        stats.fault("hang")
        return Reply(delay=faults.hang_ms / 1000.0, action=HANG)
    if faults.malformed and rnd() < faults.malformed:
        stats.fault("malformed")
        return Reply(MALFORMED_RESPONSE, delay=answer.delay, action=CLOSE)
    if faults.error and rnd() < faults.error:
        stats.fault("error")
        answer.status = faults.error_status
    if faults.spike and rnd() < faults.spike:
        stats.fault("spike")
        answer.delay = min(answer.delay + faults.spike_ms / 1000.0, MAX_LATENCY_MS / 1000.0)
    if faults.slow_body and rnd() < faults.slow_body and answer.drip is None:
        stats.fault("slow_body")
        body = answer.body if answer.body is not None else body_bytes(answer.body_len)
        answer.body, answer.body_len = None, len(body)
        answer.drip = (len(body), len(body) / faults.slow_body_bytes_per_s)
        answer.chunked = False  # a slow body keeps its Content-Length: only its pace is odd
    return None
