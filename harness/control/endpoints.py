"""ZeroMQ endpoints as users type them: checked here, so a typo is a usage error naming
the option, not a ZMQError traceback from deep inside the socket."""

from __future__ import annotations

import re

_TCP = re.compile(r"^tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.*-]+):(\d{1,5})$")


def endpoint_problem(endpoint: str, *, bind: bool) -> str | None:
    """What is wrong with a ZeroMQ endpoint, in words (None when it is fine)."""
    if endpoint.startswith("ipc://") and len(endpoint) > len("ipc://"):
        return None
    m = _TCP.match(endpoint)
    example = "tcp://0.0.0.0:5555" if bind else "tcp://HOST:5555"
    if m is None:
        return f"expected tcp://HOST:PORT (e.g. {example}) or ipc://PATH"
    if not 1 <= int(m.group(2)) <= 65535:
        return f"expected a port 1..65535, got {m.group(2)}"
    if "*" in m.group(1) and (not bind or m.group(1) != "*"):
        return "'*' is only for binding, as the whole host"
    return None


def is_loopback_endpoint(endpoint: str) -> bool:
    """ipc:// and tcp:// on a loopback address: reachable from this machine only."""
    from mockserver.addresses import is_loopback  # the mockserver's rule, shared

    m = _TCP.match(endpoint)  # endpoint_problem has passed it: tcp:// or ipc://
    return m is None or is_loopback(m.group(1).strip("[]"))
