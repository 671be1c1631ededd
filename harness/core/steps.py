"""A request as every model sends it: the fixed requests' and a flow step's shape, and
the one rule for a successful status."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from harness.core.templates import DEFAULT_ACCEPTED


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
