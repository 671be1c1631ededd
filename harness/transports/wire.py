"""What every model puts on the wire for a request: one documented header set, in one
documented order, in the same bytes.

Every model (Locust's aside: its libraries add what they add) sends exactly these headers
for the same spec, in this order:

    Host: HOST[:PORT]            the port only when it is not the scheme's default
    User-Agent: loadharness/VERSION
    Accept: */*
    Accept-Encoding: identity    no compression unless the scenario sets Accept-Encoding
    <the scenario's other headers, in the scenario's order>
    Cookie: ...                  a flow's cookie jar, when it holds cookies
    Content-Length: N            when there is a body, and for POST, PUT and PATCH
                                 (0 when they have none)

A header the scenario sets replaces the default of the same name (case-insensitive) in
the default's place. Header values are ASCII (the scenario check refuses anything else:
http.client would send latin-1 and aiohttp UTF-8 for the same text). No Connection header:
HTTP/1.1 keeps connections alive, and every model honours the server's `Connection: close`.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from typing import Any, TypeVar

from harness.core.steps import RequestSpec

BODY_METHODS = ("POST", "PUT", "PATCH")
READ_CHUNK = 1 << 16   # an answer's body is read (and dropped, or kept to max_body) in these
T = TypeVar("T")


def _version() -> str:
    try:
        return metadata.version("loadharness")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "dev"


USER_AGENT = f"loadharness/{_version()}"
DEFAULT_HEADERS: tuple[tuple[str, str], ...] = (
    ("User-Agent", USER_AGENT),
    ("Accept", "*/*"),
    ("Accept-Encoding", "identity"),
)


def host_header(host: str, port: int, default_port: int = 80) -> str:
    """As http.client and aiohttp write it: brackets for IPv6, no default port."""
    name = f"[{host}]" if ":" in host else host
    return name if port == default_port else f"{name}:{port}"


def ordered(base: Sequence[tuple[str, T]], own: Sequence[tuple[str, T]]
            ) -> list[tuple[str, T]]:
    """`base` with each header `own` names (case-insensitive) in its place, then the rest
    of `own` in its order: the one header order of every model."""
    mine = {k.lower(): (k, v) for k, v in own}
    out = [mine.get(k.lower(), (k, v)) for k, v in base]
    placed = {k.lower() for k, _ in base}
    return out + [(k, v) for k, v in own if k.lower() not in placed]


def headers_for(spec: RequestSpec, host: str, port: int,
                default_port: int = 80) -> list[tuple[str, str]]:
    """The request's headers in wire order: Host and the defaults (a scenario header of the
    same name in its place), the scenario's others, Content-Length when there is one."""
    out = ordered(base_headers(host, port, default_port), spec.headers)
    length = content_length(spec)
    return out if length is None else [*out, ("Content-Length", str(length))]


def base_headers(host: str, port: int, default_port: int = 80) -> list[tuple[str, str]]:
    """Host and the defaults: what a flow step starts from (its own headers replace these
    by name, then the cookie jar's Cookie)."""
    return [("Host", host_header(host, port, default_port)), *DEFAULT_HEADERS]


def content_length(spec: RequestSpec) -> int | None:
    """The Content-Length to send, or None for none (the rule http.client follows)."""
    return length_for(spec.method, spec.body)


def length_for(method: str, body: bytes) -> int | None:
    if body or method in BODY_METHODS:
        return len(body)
    return None


def request_bytes(spec: RequestSpec, host: str, port: int, base_path: str,
                  default_port: int = 80) -> bytes:
    """The wire form of a request, built once per spec (the fast engine sends it as is).
    A flow step's is rendered from the same parts (flows.Iteration, `wire`)."""
    lines = [f"{spec.method} {base_path}{spec.path} HTTP/1.1"]
    lines += [f"{k}: {v}" for k, v in headers_for(spec, host, port, default_port)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + spec.body


# HTTP/2 forbids connection-specific headers (RFC 9113 8.2.2); Host is :authority
H2_DROP = frozenset(("connection", "keep-alive", "proxy-connection", "transfer-encoding",
                     "upgrade", "host"))


def h2_block(method: str, scheme: str, path: str,
             headers: Sequence[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """HTTP/1.1's header set as an HTTP/2 header list: the pseudo-headers (:authority
    is the Host header's value), then every other header lower-cased in the same order."""
    authority = next(v for k, v in headers if k.lower() == "host")
    # httpcore's order (the sync and thread models send through it): one order for all
    out = [(b":method", method.encode("ascii")), (b":authority", authority.encode("latin-1")),
           (b":scheme", scheme.encode("ascii")), (b":path", path.encode("latin-1"))]
    for k, v in headers:
        name = k.lower()
        if name not in H2_DROP and (name != "te" or v.lower() == "trailers"):
            out.append((name.encode("ascii"), v.encode("latin-1")))
    return out


def h2_headers(spec: RequestSpec, scheme: str, host: str, port: int, base_path: str,
               default_port: int = 80) -> list[tuple[bytes, bytes]]:
    """A fixed request's HTTP/2 header list, built once per spec."""
    return h2_block(spec.method, scheme, base_path + spec.path,
                    headers_for(spec, host, port, default_port))


def h2_step_headers(step: Any, scheme: str, host: str, port: int,
                    default_port: int = 80) -> list[tuple[bytes, bytes]]:
    """A rendered flow step's (core.steps.Outgoing) HTTP/2 header list."""
    headers = step.headers
    if not any(k.lower() == "host" for k, _ in headers):
        headers = [("Host", host_header(host, port, default_port)), *headers]
    return h2_block(step.method, scheme, step.path, headers)
