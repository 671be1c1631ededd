"""[[requests]] and the request part of a flow step."""

from __future__ import annotations

from typing import Any

from harness.core.names import AGGREGATED
from harness.scenario.ctx import Ctx, show
from harness.scenario.spec import (
    HEADER_NAME,
    HEADER_VALUE,
    MAX_BODY_BYTES,
    MAX_HEADERS,
    PATH_RE,
    REQUEST_NAME,
    TEMPLATE_REF,
    RequestSpec,
)
from harness.stats import FLOW_PREFIX
from mockserver.http import METHODS


def parse_requests(ctx: Ctx, raw: Any, flows: bool = False) -> tuple[RequestSpec, ...]:
    if raw is None and flows:
        return ()
    if raw is None:
        raise ctx.fail("[[requests]]", "expected at least one request (or a [[flows]])")
    if not isinstance(raw, list) or (not raw and not flows):
        raise ctx.fail("[[requests]]", f"expected at least one request, got {show(raw)}")
    out: list[RequestSpec] = []
    names: set[str] = set()
    for i, where, item in ctx.entries(raw, "[[requests]]", ("name", "method", "path",
                                                          "headers", "body", "weight",
                                                          "expect_status")):
        out.append(parse_request(ctx, item, where, names, f"request{i}"))
    return tuple(out)


def parse_request(ctx: Ctx, item: dict[str, Any], where: str, names: set[str],
             default_name: str, templated: bool = False) -> RequestSpec:
    """One request or flow step: name unique among all requests and steps, method, path,
    headers, body, weight, expect_status. A step's path is checked with its `{{ }}`
    references standing for one character (what they render to is percent-encoded)."""
    name = ctx.string(item.get("name", default_name), f"{where}.name", REQUEST_NAME,
                      "a name of 1 to 200 characters, no control characters")
    if name in names or name == AGGREGATED or name.startswith(FLOW_PREFIX):
        raise ctx.fail(f"{where}.name", f'expected a unique name (not "{AGGREGATED}" nor '
                                        f'starting "{FLOW_PREFIX}"), got "{name}"')
    names.add(name)
    method = item.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise ctx.fail(f"{where}.method",
                       f"expected one of {', '.join(METHODS)}, got {show(method)}")
    path = item.get("path", "/")
    shown = TEMPLATE_REF.sub("x", path) if templated and isinstance(path, str) else path
    ctx.string(shown, f"{where}.path", PATH_RE, 'a path starting with "/" of printable ASCII '
                                              "without spaces (percent-encode the rest)")
    headers = ctx.table(item.get("headers", {}), f"{where}.headers")
    if len(headers) > MAX_HEADERS:
        raise ctx.fail(f"{where}.headers", f"expected at most {MAX_HEADERS} headers")
    for k, v in headers.items():
        if not HEADER_NAME.fullmatch(k):
            raise ctx.fail(f"{where}.headers.{k}", "expected a header name (a token)")
        if not isinstance(v, str) or not HEADER_VALUE.fullmatch(v):
            raise ctx.fail(f"{where}.headers.{k}",
                           "expected a header value of printable ASCII (no CR, LF or "
                           "other control characters; the client libraries disagree on "
                           f"the bytes of anything else: percent-encode it), got {show(v)}")
    body = item.get("body", "")
    if not isinstance(body, str) or len(body.encode()) > MAX_BODY_BYTES:
        raise ctx.fail(f"{where}.body", f"expected a string of at most "
                                        f"{MAX_BODY_BYTES >> 20} MiB, got {show(body)}")
    expect = item.get("expect_status", [])
    expect = [expect] if isinstance(expect, int) and not isinstance(expect, bool) else expect
    if not isinstance(expect, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) and 100 <= s <= 599 for s in expect):
        raise ctx.fail(f"{where}.expect_status",
                       f"expected a status code or a list of them, got {show(expect)}")
    return RequestSpec(name, method.upper(), path, tuple(headers.items()), body.encode(),
                       ctx.number(item.get("weight", 1), f"{where}.weight"), tuple(expect))
