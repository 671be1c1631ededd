"""A request as every model sends it: the fixed requests' and a flow step's shape, and
the one rule for a successful status."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

from harness.core.templates import DEFAULT_ACCEPTED

# What a transport keeps of an answer (plain ints: read on the fast engine's hot path)
KEEP_NOTHING = 0   # a fixed request: status and size
KEEP_HEADERS = 1   # a flow step: the headers it reads (and Set-Cookie for the jar)
KEEP_BODY = 2      # a flow step that extracts from the body: its headers and body

# How a model hands a rendered step to its exchange
AS_REQUEST = "request"   # an Outgoing (method, path, headers, body): aiohttp, http.client
AS_BYTES = "bytes"       # the step's bytes as they go on the wire: the fast engine

# A step's kind: which transport call sends it. HTTP is the only one today; WebSocket
# messages and HTTP/2 streams are the next (their own issues).
HTTP = "http"
STEP_KINDS = (HTTP,)


@dataclass(frozen=True)
class RequestSpec:
    name: str
    method: str = "GET"
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    weight: float = 1.0
    expect_status: tuple[int, ...] = ()  # empty: any 2xx or 3xx

    @cached_property
    def accepted_statuses(self) -> frozenset[int]:
        """The one rule for a successful status, in every model: the listed codes, else
        any 2xx or 3xx (redirects are answers; no model follows them)."""
        return frozenset(self.expect_status) if self.expect_status else DEFAULT_ACCEPTED


@dataclass
class Outgoing:
    """A rendered flow step: what a transport that takes AS_REQUEST sends."""

    k: int
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    wants_body: bool
    wanted: frozenset[bytes] = frozenset()   # the answer headers the step needs


class StepView(Protocol):
    """What a transport reads of a compiled flow step (clients.flows.Step) when it sends
    the step's bytes: its row, whether it is HEAD, what of the answer to keep."""

    k: int
    kind: str
    is_head: bool
    wanted: frozenset[bytes]

    @property
    def capture(self) -> int: ...
