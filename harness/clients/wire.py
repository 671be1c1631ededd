"""What every model puts on the wire for a request: one documented header set.

Every model sends exactly these headers for the same spec (names and values; the order is
the library's), so a comparison of models compares models only:

    Host: HOST[:PORT]            the port only when it is not the scheme's default
    User-Agent: loadharness/VERSION
    Accept: */*
    Accept-Encoding: identity    no compression unless the scenario sets Accept-Encoding
    Content-Length: N            when there is a body, and for POST, PUT and PATCH
                                 (0 when they have none)

A header the scenario sets replaces the default of the same name (case-insensitive).
No Connection header: HTTP/1.1 keeps connections alive, and every model honours the
server's `Connection: close`.
"""

from __future__ import annotations

from importlib import metadata

from harness.scenario import RequestSpec

BODY_METHODS = ("POST", "PUT", "PATCH")


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


def headers_for(spec: RequestSpec, host: str, port: int,
                default_port: int = 80) -> list[tuple[str, str]]:
    """The request's headers but Content-Length: Host, the defaults, then the scenario's
    own (which replace a default of the same name)."""
    own = {k.lower() for k, _ in spec.headers}
    out = [] if "host" in own else [("Host", host_header(host, port, default_port))]
    out += [(k, v) for k, v in DEFAULT_HEADERS if k.lower() not in own]
    out += list(spec.headers)
    return out


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
    length = content_length(spec)
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + spec.body
