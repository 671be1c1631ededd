"""A request as every model sends it: the fixed requests' and a flow step's shape, and
the one rule for a successful status."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from harness.core.templates import DEFAULT_ACCEPTED

# What a transport keeps of an answer (plain ints: read on the fast engine's hot path)
KEEP_NOTHING = 0   # a fixed request: status and size
KEEP_HEADERS = 1   # a flow step: the headers it reads (and Set-Cookie for the jar)
KEEP_BODY = 2      # a flow step that extracts from the body: its headers and body

# How a model hands a rendered step to its exchange
AS_REQUEST = "request"   # an Outgoing (method, path, headers, body): aiohttp, http.client
AS_BYTES = "bytes"       # the step's bytes as they go on the wire: the fast engine


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
