"""User journeys at run time: test data rows, compiled flows, and one flow iteration as a
model drives it.

An `Iteration` holds one pass through a flow; the model's loop asks it for the next
request, sends it however that model sends, and hands back the answer. The logic of a
journey (render, extract, abort) is written once, here; loops.py has the blocking and the
async driver. Templates are compiled (templates.py) into getters once per process, so a
step renders by joining strings; the fast engine takes a step as the bytes to send.
"""

from __future__ import annotations

import dataclasses
import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.core.datatable import DataRows
from harness.core.extraction import NO_COOKIES, Answer, CookieJar, Extract, compile_extract
from harness.core.failures import BODY_TOO_LARGE, DEFAULT_MAX_BODY, EXTRACT_FAILED, STATUS
from harness.core.steps import HTTP, KEEP_BODY, KEEP_HEADERS, Outgoing
from harness.core.templates import (
    DEFAULT_ACCEPTED,
    Compiled,
    Render,
    as_is,
    compile_pieces,
    compile_template,
    in_header,
    in_json,
    in_path,
    merge_text,
    refs,
    renderer,
    static_text,
)
from harness.transports.wire import length_for, ordered


@dataclass
class Feeder:
    """Rows of one [[data]] table for this load process.

    per-user: user g (global across workers and processes) takes row g, wrapping.
    sequential: each iteration takes the next row; stream s of S (one per load process)
    takes rows s, s+S, s+2S...: no row is used by two processes before the table wraps.
    random: a uniform draw per iteration, from the user's own seeded generator."""

    columns: list[str]
    rows: Sequence[tuple[str, ...]]   # core.datatable.DataRows
    order: str
    stream: int = 0
    streams: int = 1
    next_k: int = 0

    def row(self, user_global: int, rng: random.Random) -> dict[str, str]:
        n = len(self.rows)
        if self.order == "per-user":
            i = user_global % n
        elif self.order == "sequential":
            i = (self.next_k * self.streams + self.stream) % n
            self.next_k += 1
        else:
            i = rng.randrange(n)
        return dict(zip(self.columns, self.rows[i], strict=True))


# -- one flow --------------------------------------------------------------------------------

def inflated(answer: Answer, limit: int) -> bytes | None:
    """The body as sent, or inflated when it says gzip or deflate: at most `limit` bytes
    (None beyond: a bomb of 1 GiB from 1 MiB never fills the memory)."""
    encoding = next((v for k, v in answer.headers if k.lower() == "content-encoding"), "")
    encoding = encoding.strip().lower()
    if encoding not in ("gzip", "x-gzip", "deflate"):
        return answer.body
    inflater = zlib.decompressobj(47 if "gzip" in encoding else 15)  # 47: gzip or zlib
    try:
        out = inflater.decompress(answer.body, limit + 1)
    except zlib.error:
        return answer.body   # not what it says it is: extraction reads the bytes as sent
    return None if len(out) > limit else out


@dataclass
class Step:
    """A flow step compiled: name index in the recorder, templates, extractions."""

    k: int
    name: str
    method: str
    path: Render
    headers: list[tuple[str, Render]]
    body: Render | None     # None: the step has no body template
    accepted: frozenset[int]
    extracts: list[tuple[str, Callable[[Answer, CookieJar], str | None]]]
    think_s: float
    wants_body: bool
    head: Render             # request line and headers, for the bytes on the wire
    wanted: frozenset[bytes] = frozenset()   # answer headers it reads (lower; Set-Cookie
    # too when the user keeps a jar)
    sets_cookie: bool = False    # it has its own Cookie header: the jar's is not added
    inflate_to: int = 0          # it asked for gzip/deflate: inflate the answer to this
    is_head: bool = False
    kind: str = HTTP         # which transport call sends it (core.steps.STEP_KINDS)
    # the fast engine's shortcuts where a part has no reference: the head, and the body
    # with its Content-Length line before it (end_of_head), joined once
    head_text: str | None = None
    body_tail: bytes | None = None

    @property
    def capture(self) -> int:
        """What the fast engine keeps of the answer (core.steps: KEEP_HEADERS, KEEP_BODY)."""
        return KEEP_BODY if self.wants_body else KEEP_HEADERS


@dataclass
class Flow:
    k: int            # the recorder's index of its `flow:<name>` row
    name: str
    steps: list[Step]
    tables: list[str]


def compile_flow(raw: dict[str, Any], k: int, first_step_k: int,
                 base: list[tuple[str, str]] = (), base_path: str = "",
                 cookies: bool = True, max_body: int = DEFAULT_MAX_BODY) -> Flow:
    """A flow compiled for this process: `base` are the headers every step starts from
    (Host and the defaults), `base_path` the target URL's path."""
    steps = []
    tables: set[str] = set()
    for i, s in enumerate(raw["steps"]):
        headers = [(name, compile_template(v)) for name, v in s["headers"]]
        own = {name.lower() for name, _ in s["headers"]}
        # wire.ordered: a step header replacing a default takes the default's place
        headers = ordered([(n, [v]) for n, v in base], headers)
        json_body = any(n.lower() == "content-type" and "json" in v.lower()
                        for n, v in s["headers"])
        extracts = [(e["var"], compile_extract(Extract(e["var"], e["kind"], e["expr"])))
                    for e in s["extract"]]
        path, body = compile_template(s["path"]), compile_template(s["body"])
        named = frozenset(e["expr"].lower().encode("latin-1") for e in s["extract"]
                          if e["kind"] == "header")
        wants_body = any(e["kind"] in ("json", "regex") for e in s["extract"])
        # a compressed answer is inflated (to max_body) only for a step that asked for it
        inflate = wants_body and any(
            n.lower() == "accept-encoding" and any(c in v.lower() for c in ("gzip", "deflate"))
            for n, v in s["headers"])
        if inflate:
            named |= {b"content-encoding"}
        path_c = compile_pieces(path, in_path)
        headers_c = [(n, p if n.lower() not in own else compile_pieces(p, in_header))
                     for n, p in headers]
        body_c = compile_pieces(body, in_json if json_body else as_is)
        head_c = _head(s["method"], base_path, path_c, headers_c)
        body_text = static_text(body_c)
        step = Step(first_step_k + i, s["name"], s["method"], renderer(path_c),
                    [(n, renderer(c)) for n, c in headers_c],
                    renderer(body_c) if body_c else None,
                    frozenset(s["expect_status"]) or DEFAULT_ACCEPTED, extracts,
                    float(s["think_time_s"]),
                    wants_body=wants_body, inflate_to=max_body if inflate else 0,
                    head=renderer(head_c),
                    wanted=named | {b"set-cookie"} if cookies else named,
                    sets_cookie="cookie" in own, is_head=s["method"] == "HEAD",
                    kind=s.get("kind", HTTP),
                    head_text=static_text(head_c),
                    body_tail=None if body_text is None else
                    end_of_head(s["method"], body_text.encode()))
        for piece in (*refs(path), *refs(body), *(r for _, p in headers for r in refs(p))):
            if piece.kind == "data":
                tables.add(piece.a)
        steps.append(step)
    return Flow(k, raw["name"], steps, sorted(tables))


def end_of_head(method: str, body: bytes) -> bytes:
    """What follows a step's headers on the wire: Content-Length as wire.length_for says
    (every model's rule), the blank line, the body."""
    length = length_for(method, body)
    if length is None:
        return b"\r\n" + body
    return f"Content-Length: {length}\r\n\r\n".encode("latin-1") + body


def _head(method: str, base_path: str, path: Compiled,
          headers: list[tuple[str, Compiled]]) -> Compiled:
    """The request line and headers as one compiled template (adjacent text merged), so
    the fast engine renders a step's head in one call."""
    parts: list[Any] = [f"{method} {base_path}", *path, " HTTP/1.1\r\n"]
    for name, pieces in headers:
        parts += [f"{name}: ", *pieces, "\r\n"]
    return merge_text(parts)


class FlowUser:
    """One user's journey state: its cookie jar, its global index, its generator, and the
    iteration it is in (the fast engine's step sender reads the step from it)."""

    def __init__(self, user_global: int, worker: int, feeders: dict[str, Feeder],
                 base_path: str, seed: int, cookies: bool) -> None:
        self.user_global, self.worker = user_global, worker
        self.user_str, self.worker_str = str(user_global), str(worker)
        self.feeders, self.base_path = feeders, base_path
        self.rng = random.Random(seed)
        self.jar = CookieJar() if cookies else None
        self.iterations = 0
        self.current: Iteration | None = None

    def start(self, flow: Flow) -> Iteration:
        self.iterations += 1
        rows = {t: self.feeders[t].row(self.user_global, self.rng) for t in flow.tables} \
            if flow.tables else {}
        self.current = it = Iteration(self, flow, rows, self.iterations - 1)
        return it


class Iteration:
    """One pass through a flow: `next_request` renders the next step (None at the end or
    after a failure), `answer` takes its answer and says whether the step failed."""

    __slots__ = ("user", "flow", "steps", "rows", "number", "values", "i", "aborted",
                 "failure", "step")

    def __init__(self, user: FlowUser, flow: Flow, rows: dict[str, dict[str, str]],
                 number: int) -> None:
        self.user, self.flow, self.rows, self.number = user, flow, rows, number
        self.steps = flow.steps
        self.values: dict[str, str] = {}
        self.i = 0
        self.aborted = False
        self.failure = ""            # the kind that ended it early
        self.step: Step | None = None

    def _next_step(self) -> Step | None:
        if self.aborted or self.i >= len(self.steps):
            return None
        step = self.step = self.steps[self.i]
        self.i += 1
        return step

    def _cookie(self, step: Step) -> str:
        jar = self.user.jar
        return jar.header() if jar is not None and jar.cookies and not step.sets_cookie \
            else ""

    def next_request(self) -> Outgoing | None:
        """The next step rendered; raises StepFailed when a value cannot be placed."""
        step = self._next_step()
        if step is None:
            return None
        body = step.body(self).encode() if step.body is not None else b""
        headers = [(name, r(self)) for name, r in step.headers]
        if cookie := self._cookie(step):
            headers.append(("Cookie", cookie))
        length = length_for(step.method, body)
        if length is not None:   # last, as on the fast engine's wire (wire.py's order)
            headers.append(("Content-Length", str(length)))
        path = self.user.base_path + step.path(self)
        return Outgoing(step.k, step.method, path, headers, body, step.wants_body,
                        step.wanted)

    def next_wire(self) -> bytes | None:
        """The next step as the bytes to send (the fast engine): the same request as
        next_request's, headers in the order wire.request_bytes writes them."""
        step = self._next_step()
        if step is None:
            return None
        head = step.head_text
        if head is None:
            head = step.head(self)
        jar = self.user.jar
        if jar is not None and jar.cookies and not step.sets_cookie:
            head += f"Cookie: {jar.header()}\r\n"
        tail = step.body_tail
        if tail is None:
            tail = end_of_head(step.method, step.body(self).encode())  # type: ignore[misc]
        return head.encode("ascii") + tail

    def answer(self, answer: Answer) -> tuple[str, int] | None:
        """None when the step succeeded, else (error kind, status) -- and the rest of the
        iteration is skipped."""
        step = self.step
        assert step is not None
        jar = self.user.jar
        if jar is not None and answer.headers:
            jar.take(answer.headers)
        if answer.status not in step.accepted:
            self.aborted, self.failure = True, STATUS
            return STATUS, answer.status
        if step.inflate_to:
            body = inflated(answer, step.inflate_to)
            if body is None:
                self.aborted, self.failure = True, BODY_TOO_LARGE
                return BODY_TOO_LARGE, 0
            answer = dataclasses.replace(answer, body=body)
        for var, extract in step.extracts:
            value = extract(answer, jar or NO_COOKIES)
            if value is None:
                self.aborted, self.failure = True, EXTRACT_FAILED
                return EXTRACT_FAILED, 0
            self.values[var] = value
        return None

    def fail(self) -> None:
        self.aborted = True

    @property
    def done(self) -> bool:
        """Every step ran and succeeded."""
        return not self.aborted and self.i >= len(self.steps)


def prepare(job: Any, base: list[tuple[str, str]]
            ) -> tuple[list[Flow], Callable[[int], FlowUser]]:
    """This load process's compiled flows (`base`: Host and the default headers every
    step starts from), and a maker of each user's FlowUser (its global index, its feeders
    shared by the process, its own seeded generator)."""
    n_requests = len(job.requests)
    n_steps = sum(len(f["steps"]) for f in job.flows)
    flows, first = [], n_requests
    for i, raw in enumerate(job.flows):
        flows.append(compile_flow(raw, n_requests + n_steps + i, first, base,
                                  job.base_path, job.cookies, job.max_body))
        first += len(raw["steps"])
    feeders = {t["name"]: Feeder(t["columns"], DataRows(t["blob"], len(t["columns"]),
                                                       t["offset"]),
                                 t["order"], job.stream_index, job.stream_count)
               for t in job.data}

    def user(i: int) -> FlowUser:
        return FlowUser(job.user_offset + i, job.stream_index, feeders, job.base_path,
                        job.seed * 7 + i, job.cookies)
    return flows, user
