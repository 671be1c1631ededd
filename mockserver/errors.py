"""The mockserver's errors: a config value that is wrong, and where it is.

`field` is a dotted path (`routes[2].latency.p99_ms`) so every front end -- a routes file,
`PUT /_mock/config`, the harness's `[target.mock]` -- can name it in its own words.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is wrong; `field` names it (dotted path) for the error message."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
