"""Built-in routes and the routes file: which profile a request gets, as an Answer.

An Answer says what to send (label for stats, status, body, delay, streamed body); the app
then applies header overrides and faults in one place and turns it into a Reply.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass
from typing import Any

from mockserver import auth
from mockserver.config import MockConfig, Profile
from mockserver.faults import Faults
from mockserver.http import Request, body_bytes
from mockserver.latency import MAX_LATENCY_MS, delay_s
from mockserver.queue import QueueSpec

MAX_DELAY_MS = int(MAX_LATENCY_MS)  # /delay/{ms}: the one latency cap
MAX_BYTES = 64 << 20            # /bytes/{n} and /drip
MAX_CPU_N = 500_000_000         # /cpu/{n}: bounded, but big enough to block for seconds
MAX_DRIP_MS = 600_000


@dataclass(slots=True)
class Answer:
    label: str
    status: int = 200
    body: bytes | None = None     # None: body_bytes(body_len), cacheable by length
    body_len: int = 0
    delay: float = 0.0
    content_type: bytes = b"application/octet-stream"
    drip: tuple[int, float] | None = None   # (bytes, seconds): a body paced over time
    chunked: bool = True          # a paced body is chunked, unless a fault keeps its length
    faults: Faults | None = None  # a route's own faults; None means the global ones
    extra: bytes = b""            # more header lines (each ending CRLF): Set-Cookie...
    queue: QueueSpec | None = None  # the profile's queueing station (queue.py)


class BadParam(ValueError):
    """A built-in route got a parameter it cannot use: answered 400, counted."""


def _int_param(raw: str, name: str, lo: int, hi: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise BadParam(f"{name}: expected an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise BadParam(f"{name}: expected {lo}..{hi}, got {value}")
    return value


def _profile_answer(label: str, profile: Profile, rng: random.Random) -> Answer:
    delay = delay_s(profile.latency, rng) if profile.latency is not None else 0.0
    return Answer(label, profile.status, None, profile.body_bytes, delay, faults=profile.faults,
                  queue=profile.queue)


def _delay(req: Request, arg: str, rng: random.Random) -> Answer:
    ms = _int_param(arg, "ms", 0, MAX_DELAY_MS)
    return Answer("/delay/{ms}", delay=ms / 1000.0, body_len=2)


def _status(req: Request, arg: str, rng: random.Random) -> Answer:
    return Answer("/status/{code}", status=_int_param(arg, "code", 200, 599), body_len=2)


def _bytes(req: Request, arg: str, rng: random.Random) -> Answer:
    return Answer("/bytes/{n}", body_len=_int_param(arg, "n", 0, MAX_BYTES))


def _cpu(req: Request, arg: str, rng: random.Random) -> Answer:
    # The lesson's CPU-bound exercise, run on the server's event loop. It blocks every other
    # connection of this process on purpose: that is what CPU work does to an event loop.
    n = _int_param(arg, "n", 0, MAX_CPU_N)
    total = sum(i * i for i in range(n))
    return Answer("/cpu/{n}", body=b"%d\n" % total, content_type=b"text/plain")


def _drip(req: Request, arg: str, rng: random.Random) -> Answer:
    params = dict(p.partition("=")[::2] for p in req.query.split("&") if p)
    n = _int_param(params.get("bytes", "1024"), "bytes", 0, MAX_BYTES)
    ms = _int_param(params.get("duration_ms", "1000"), "duration_ms", 0, MAX_DRIP_MS)
    return Answer("/drip", drip=(n, ms / 1000.0))


def _echo(req: Request, arg: str, rng: random.Random) -> Answer:
    body = json.dumps({
        "method": req.method,
        "path": req.path,
        "query": req.query,
        "http_version": req.http_version,
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in req.headers],
        "body": req.body.decode("utf-8", "replace"),
    }).encode() + b"\n"
    return Answer("/echo", body=body, content_type=b"application/json")


def _auth(req: Request, arg: str, rng: random.Random) -> Answer:
    label, status, obj, extra = auth.handle(req, arg)
    return Answer(label, status, json.dumps(obj, sort_keys=True).encode() + b"\n",
                  content_type=b"application/json", extra=extra)


# first path segment -> handler(request, rest of path, rng)
_BUILTINS: dict[str, Any] = {
    "delay": _delay, "status": _status, "bytes": _bytes, "cpu": _cpu, "drip": _drip,
    "echo": _echo, "auth": _auth,
}
# First path segments that never reach the default profile.
BUILTIN_SEGMENTS = frozenset({*_BUILTINS, "_mock", "health"})


def answer_for(req: Request, config: MockConfig, rng: random.Random) -> Answer:
    """Routes file first (so users can shadow anything), then built-ins, then the default."""
    for route in config.routes:
        if route.matches(req.method, req.path):
            return _profile_answer(route.path, route.profile, rng)
    first, _, rest = req.path[1:].partition("/")
    handler = _BUILTINS.get(first)
    if handler is not None and (rest or first in ("drip", "echo")):
        try:
            return handler(req, rest, rng)
        except BadParam as exc:
            return Answer(f"/{first}", status=400,
                        body=json.dumps({"error": str(exc)}).encode() + b"\n",
                        content_type=b"application/json")
    return _profile_answer("default", config.default, rng)


async def paced_body(conn: Any, total: int, seconds: float, chunked: bool) -> None:
    """Write `total` bytes spread evenly over `seconds` (about every 10 ms), then the end."""
    loop = asyncio.get_running_loop()
    steps = max(1, min(total, int(seconds / 0.01))) if total else 1
    interval = seconds / steps
    data = body_bytes(total)
    start = loop.time()
    sent = 0
    for i in range(steps):
        await asyncio.sleep(max(0.0, start + (i + 1) * interval - loop.time()))
        end = total * (i + 1) // steps
        piece = data[sent:end]
        sent = end
        if piece:
            conn.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            await conn.drain()
    if chunked:
        conn.write(b"0\r\n\r\n")
