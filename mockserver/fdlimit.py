"""The descriptor limit: thousands of connections need more than the usual soft 1,024.

Shared by the mockserver and the harness's workers (the harness may import the
mockserver's small modules; never the other way round).
"""

from __future__ import annotations

import resource


def raise_nofile() -> None:
    """Raise the soft RLIMIT_NOFILE to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
