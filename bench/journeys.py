"""Journeys: the fast engine on one core against nginx, a two-step templated flow with one
JSON extraction (login -> token -> profile) against the same two requests fixed. The
flow pays for rendering, keeping the answer's headers and body, a JSONPath and the flow's
own row; the goal is that this costs under 30% of the requests' rate."""

from __future__ import annotations

import contextlib

from bench.common import Section, free_port, nginx, nginx_available
from bench.runner import harness_run

FAST = 'model = "uvloop"\nengine = "fast"'
STEPS = '''[[flows]]
name = "session"
[[flows.steps]]
name = "login"
method = "POST"
path = "/auth/login"
headers = { "Content-Type" = "application/json" }
body = '{"user": "user-{{user}}", "n": {{iteration}}}'
extract = { token = { json = "$.token" } }
[[flows.steps]]
name = "me"
path = "/auth/me"
headers = { "Authorization" = "Bearer {{token}}" }
'''
FIXED = '''[[requests]]
name = "login"
method = "POST"
path = "/auth/login"
headers = { "Content-Type" = "application/json" }
body = '{"user": "user-1", "n": 1}'
[[requests]]
name = "me"
path = "/auth/me"
headers = { "Authorization" = "Bearer 0123456789abcdef" }
'''


def nginx_auth(port: int) -> contextlib.AbstractContextManager:
    """nginx answering /auth/login with a token in JSON, and "ok" elsewhere."""
    return nginx(port, "location = /auth/login { default_type application/json; "
                       """return 200 '{"token": "0123456789abcdef", "user": "u"}'; } """
                       'location / { return 200 "ok"; }')


def _text(body: str, seconds: int) -> str:
    return (f'[run]\nduration = "{seconds}s"\nwarmup = "1s"\nworkers = 1\n'
            f"[load]\nconcurrency = 50\n{body}[[models]]\n{FAST}\n")


def run(quick: bool) -> list[Section]:
    if not nginx_available():
        return [Section("Journeys: a templated flow vs fixed requests (fast engine)",
                        "journeys: skipped (nginx is not installed)", [])]
    seconds = 3 if quick else 10
    rounds = 1 if quick else 3
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    best = {"fixed": 0.0, "flow": 0.0}
    with nginx_auth(port):
        for r in range(rounds):
            for kind in (("fixed", "flow") if r % 2 == 0 else ("flow", "fixed")):
                result = harness_run(_text(FIXED if kind == "fixed" else STEPS, seconds),
                                     target=url)
                agg = result.agg()
                assert agg["failures"] == 0, f"{kind}: {agg['failures']} failures"
                best[kind] = max(best[kind], float(agg["rps"]))
    ratio = best["flow"] / best["fixed"]
    table = ["| load | requests/s on the wire (best of rounds) |", "|---|---:|",
             f"| two fixed requests (POST /auth/login, GET /auth/me) | {best['fixed']:,.0f} |",
             f"| the same two as a flow: templated body, JSONPath extraction, Bearer "
             f"header | {best['flow']:,.0f} |"]
    return [Section("Journeys: a templated flow vs fixed requests (fast engine, one core, "
                    "nginx)", f"journeys: flow / fixed requests = {ratio:.2f}x", table,
                    [(f"flow >= 0.7x fixed requests ({ratio:.2f}x)", ratio >= 0.7)],
                    notes=f"50 users, {seconds} s per run, best of {rounds} rounds in "
                          "alternating order; server on core 0, load on core 1. That the "
                          "fixed-request path did not slow down is the `versus` section "
                          "(this tree against the commit before journeys).")]
