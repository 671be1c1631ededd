"""Which hosts are this machine's own: the one loopback rule of the mockserver's admin API,
the coordinator's endpoints and the dashboard (harness reads it from here)."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback address (127.0.0.0/8, ::1); a name is not resolved."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
