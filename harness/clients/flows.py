"""User journeys: `{{ }}` templates compiled once, values extracted from answers, per-user
cookie jars, test data rows, and one flow iteration as a model drives it.

A template is parsed once into pieces (literal text and references), so a step is
rendered by joining strings: no parsing per request, in any model. An `Iteration` holds
one pass through a flow; the model's loop asks it for the next request, sends it however
that model sends, and hands back the answer. The logic of a journey (render, extract,
abort) is written once, here; loops.py has the blocking and the async driver.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from harness.clients.failures import EXTRACT_FAILED, STATUS, TEMPLATE_FAILED

BUILTINS = ("user", "worker", "iteration", "uuid")
DEFAULT_ACCEPTED = frozenset(range(200, 400))   # success: any 2xx or 3xx, unless listed
FLOW_PREFIX = "flow:"

_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.S)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_RANDOM_INT = re.compile(r"random_int\(\s*(-?\d{1,18})\s*,\s*(-?\d{1,18})\s*\)")


class TemplateError(ValueError):
    """A template that cannot be compiled: the message says what, for the scenario check."""


@dataclass(frozen=True)
class Ref:
    """A reference in a template: kind is data (a=table, b=column), var (a=name), a
    built-in (user, worker, iteration, uuid) or randint (a, b as text)."""

    kind: str
    a: str = ""
    b: str = ""

    @property
    def shown(self) -> str:
        if self.kind == "data":
            return f"{self.a}.{self.b}"
        if self.kind == "randint":
            return f"random_int({self.a}, {self.b})"
        return self.a or self.kind


Pieces = tuple[str | Ref, ...]


def compile_template(text: str) -> Pieces:
    """'Bearer {{token}}' -> ('Bearer ', Ref('var', 'token')); raises TemplateError."""
    pieces: list[str | Ref] = []
    pos = 0
    for m in _TEMPLATE.finditer(text):
        if m.start() > pos:
            pieces.append(text[pos:m.start()])
        pieces.append(_ref(m.group(1).strip()))
        pos = m.end()
    rest = text[pos:]
    if "{{" in rest:
        raise TemplateError(f"an unclosed {{{{ in {text!r:.60}")
    if rest:
        pieces.append(rest)
    return tuple(pieces)


def _ref(inner: str) -> Ref:
    if inner in BUILTINS:
        return Ref(inner)
    if m := _RANDOM_INT.fullmatch(inner):
        lo, hi = int(m.group(1)), int(m.group(2))
        if lo > hi:
            raise TemplateError(f"random_int({lo}, {hi}): expected the low bound first")
        return Ref("randint", m.group(1), m.group(2))
    table, dot, column = inner.partition(".")
    if dot and _NAME.fullmatch(table) and column and "." not in column:
        return Ref("data", table, column)
    if _NAME.fullmatch(inner):
        return Ref("var", inner)
    raise TemplateError(f"{{{{{inner}}}}} is not a name (a data column like users.id, a "
                        f"value extracted earlier, {', '.join(BUILTINS)} or random_int(a, b))")


def refs(pieces: Pieces) -> list[Ref]:
    return [p for p in pieces if isinstance(p, Ref)]


# -- escaping: a value is escaped for where it lands ----------------------------------------

def in_path(value: str) -> str:
    return quote(value, safe="")


_JSON_PLAIN = re.compile(r'[^"\\\x00-\x1f\x7f]*')


def in_json(value: str) -> str:
    if _JSON_PLAIN.fullmatch(value):   # nothing to escape: most values
        return value
    return json.dumps(value, ensure_ascii=False)[1:-1]


def as_is(value: str) -> str:
    return value


def in_header(value: str) -> str:
    if "\r" in value or "\n" in value or "\0" in value:
        raise StepFailed(TEMPLATE_FAILED, "a value holding CR, LF or NUL cannot go into a "
                                          "header")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise StepFailed(TEMPLATE_FAILED, "a header value must be latin-1 text") from None
    return value


class StepFailed(Exception):
    """A step that cannot be sent or whose answer does not do (its kind, for errors.csv)."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


# -- extraction ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Extract:
    var: str
    kind: str      # json | regex | header | cookie
    expr: str


def compile_extract(spec: Extract) -> Callable[[Answer, CookieJar], str | None]:
    """One extraction, compiled (a JSONPath parsed, a regex compiled) once; raises
    ValueError with a readable message for a bad expression."""
    if spec.kind == "json":
        from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
        from jsonpath_ng.ext import parse
        try:
            path = parse(spec.expr)
        except (JsonPathLexerError, JsonPathParserError, Exception) as exc:
            raise ValueError(f"expected a JSONPath like $.token, got {spec.expr!r} "
                             f"({str(exc).splitlines()[0][:80]})") from None
        walk = _simple_path(spec.expr)
        if walk is not None:   # $.a.b[0]: a walk down the document, ~20x jsonpath-ng's find
            def by_walk(answer: Answer, jar: CookieJar) -> str | None:
                try:
                    value = json.loads(answer.body)
                    for step in walk:
                        value = value[step]
                except (ValueError, LookupError, TypeError):
                    return None
                return value if isinstance(value, str) else json.dumps(value)
            return by_walk

        def by_json(answer: Answer, jar: CookieJar) -> str | None:
            try:
                doc = json.loads(answer.body)
            except ValueError:
                return None
            found = path.find(doc)
            if not found:
                return None
            value = found[0].value
            return value if isinstance(value, str) else json.dumps(value)
        return by_json
    if spec.kind == "regex":
        try:
            pattern = re.compile(spec.expr)
        except re.error as exc:
            raise ValueError(f"expected a regular expression, got {spec.expr!r} ({exc})") \
                from None

        def by_regex(answer: Answer, jar: CookieJar) -> str | None:
            m = pattern.search(answer.body.decode("utf-8", "replace"))
            if m is None:
                return None
            return m.group(1) if pattern.groups else m.group(0)
        return by_regex
    name = spec.expr.lower()
    if spec.kind == "header":
        def by_header(answer: Answer, jar: CookieJar) -> str | None:
            return next((v for k, v in answer.headers if k.lower() == name), None)
        return by_header

    def by_cookie(answer: Answer, jar: CookieJar) -> str | None:
        for key, value in answer.headers:
            if key.lower() == "set-cookie":
                cname, _, rest = value.partition("=")
                if cname.strip() == spec.expr:
                    return rest.split(";", 1)[0].strip()
        return jar.cookies.get(spec.expr)
    return by_cookie


_SIMPLE_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\['([^'\\]*)'\]")


def _simple_path(expr: str) -> list[str | int] | None:
    """`$.a.b[0]['c d']` -> ['a', 'b', 0, 'c d']; None for anything jsonpath-ng must do
    (wildcards, filters, recursion, slices)."""
    if not expr.startswith("$"):
        return None
    out: list[str | int] = []
    pos = 1
    while pos < len(expr):
        m = _SIMPLE_PART.match(expr, pos)
        if m is None:
            return None
        name, index, quoted = m.groups()
        out.append(int(index) if index is not None else name if name is not None
                   else quoted)
        pos = m.end()
    return out


# -- answers and cookies ---------------------------------------------------------------------

@dataclass
class Answer:
    """What a model hands back for a flow step: status, body (when the step extracts from
    it; else possibly empty), headers in order, and the body's size."""

    status: int
    body: bytes
    headers: list[tuple[str, str]]
    nbytes: int = -1

    @property
    def size(self) -> int:
        return self.nbytes if self.nbytes >= 0 else len(self.body)


_MAX_AGE = re.compile(r"(?i)max-age\s*=\s*(-?\d+)")


@dataclass
class CookieJar:
    """One user's cookies (name -> value), kept across steps and iterations. Attributes
    (Path, Domain, Secure) are not applied: a load test talks to one target."""

    cookies: dict[str, str] = field(default_factory=dict)

    def take(self, headers: list[tuple[str, str]]) -> None:
        for key, value in headers:
            if key.lower() != "set-cookie":
                continue
            pair, _, attrs = value.partition(";")
            name, eq, val = pair.partition("=")
            name = name.strip()
            if not eq or not name:
                continue
            gone = _MAX_AGE.search(attrs)
            if gone and int(gone.group(1)) <= 0:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = val.strip()

    def header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())


_NO_COOKIES = CookieJar()   # what extraction reads when cookies are off


# -- test data -------------------------------------------------------------------------------

@dataclass
class Feeder:
    """Rows of one [[data]] table for this load process.

    per-user: user g (global across workers and processes) takes row g, wrapping.
    sequential: each iteration takes the next row; stream s of S (one per load process)
    takes rows s, s+S, s+2S...: no row is used by two processes before the table wraps.
    random: a uniform draw per iteration, from the user's own seeded generator."""

    columns: list[str]
    rows: list[list[str]]
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

@dataclass
class Step:
    """A flow step compiled: name index in the recorder, templates, extractions."""

    k: int
    name: str
    method: str
    path: Pieces
    headers: list[tuple[str, Pieces]]
    body: Pieces
    json_body: bool
    accepted: frozenset[int]
    extracts: list[tuple[str, Callable[[Answer, CookieJar], str | None]]]
    think_s: float
    wants_body: bool
    fixed_headers: list[tuple[str, str]]    # the base headers this step does not replace
    head: tuple[Any, ...] = ()   # request line and headers: str, or (Ref, escape) pairs
    wanted: frozenset[bytes] = frozenset()   # header names its extractions read (lower)
    wanted_jar: frozenset[bytes] = frozenset()   # the same and Set-Cookie, for the jar
    sets_cookie: bool = False    # it has its own Cookie header: the jar's is not added


@dataclass
class Flow:
    k: int            # the recorder's index of its `flow:<name>` row
    name: str
    steps: list[Step]
    tables: list[str]


def compile_flow(raw: dict[str, Any], k: int, first_step_k: int,
                 base: list[tuple[str, str]] = (), base_path: str = "") -> Flow:
    """A flow compiled for this process: `base` are the headers every step starts from
    (Host and the defaults), `base_path` the target URL's path."""
    steps = []
    tables: set[str] = set()
    for i, s in enumerate(raw["steps"]):
        headers = [(name, compile_template(v)) for name, v in s["headers"]]
        own = {name.lower() for name, _ in s["headers"]}
        fixed = [(n, v) for n, v in base if n.lower() not in own]
        json_body = any(n.lower() == "content-type" and "json" in v.lower()
                        for n, v in s["headers"])
        extracts = [(e["var"], compile_extract(Extract(e["var"], e["kind"], e["expr"])))
                    for e in s["extract"]]
        path = compile_template(s["path"])
        named = frozenset(e["expr"].lower().encode("latin-1") for e in s["extract"]
                          if e["kind"] == "header")
        step = Step(first_step_k + i, s["name"], s["method"], path,
                    headers, compile_template(s["body"]), json_body,
                    frozenset(s["expect_status"]) or DEFAULT_ACCEPTED, extracts,
                    float(s["think_time_s"]),
                    wants_body=any(e["kind"] in ("json", "regex") for e in s["extract"]),
                    fixed_headers=fixed,
                    head=_head(s["method"], base_path, path, fixed, headers),
                    wanted=named, wanted_jar=named | {b"set-cookie"},
                    sets_cookie="cookie" in own)
        for piece in (*refs(step.path), *refs(step.body),
                      *(r for _, p in headers for r in refs(p))):
            if piece.kind == "data":
                tables.add(piece.a)
        steps.append(step)
    return Flow(k, raw["name"], steps, sorted(tables))


def _head(method: str, base_path: str, path: Pieces, fixed: list[tuple[str, str]],
          headers: list[tuple[str, Pieces]]) -> tuple[Any, ...]:
    """The request line and headers as one template (adjacent text merged), so the fast
    engine renders a step's head with one join."""
    parts: list[Any] = [f"{method} {base_path}"]
    parts += [p if isinstance(p, str) else (p, in_path) for p in path]
    parts.append(" HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in fixed))
    for name, pieces in headers:
        parts.append(f"{name}: ")
        parts += [p if isinstance(p, str) else (p, in_header) for p in pieces]
        parts.append("\r\n")
    merged: list[Any] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        elif part != "":
            merged.append(part)
    return tuple(merged)


@dataclass
class Outgoing:
    """A rendered request: what the model sends."""

    k: int
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    wants_body: bool
    data: bytes = b""     # the whole request on the wire (next_request(wire=True))
    wanted: frozenset[bytes] = frozenset()   # the answer headers the step needs


class FlowUser:
    """One user's journey state: its cookie jar, its global index, its generator."""

    def __init__(self, user_global: int, worker: int, feeders: dict[str, Feeder],
                 base_path: str, seed: int, cookies: bool) -> None:
        self.user_global, self.worker = user_global, worker
        self.feeders, self.base_path = feeders, base_path
        self.rng = random.Random(seed)
        self.jar = CookieJar() if cookies else None
        self.iterations = 0

    def start(self, flow: Flow) -> Iteration:
        self.iterations += 1
        rows = {t: self.feeders[t].row(self.user_global, self.rng) for t in flow.tables}
        return Iteration(self, flow, rows, self.iterations - 1)


class Iteration:
    """One pass through a flow: `next_request` renders the next step (None at the end or
    after a failure), `answer` takes its answer and says whether the step failed."""

    def __init__(self, user: FlowUser, flow: Flow, rows: dict[str, dict[str, str]],
                 number: int) -> None:
        self.user, self.flow, self.rows, self.number = user, flow, rows, number
        self.values: dict[str, str] = {}
        self.i = 0
        self.aborted = False
        self.failure = ""            # the kind that ended it early
        self.step: Step | None = None

    def _value(self, ref: Ref) -> str:
        kind = ref.kind
        if kind == "var":
            return self.values[ref.a]
        if kind == "data":
            return self.rows[ref.a][ref.b]
        if kind == "iteration":
            return str(self.number)
        if kind == "user":
            return str(self.user.user_global)
        if kind == "worker":
            return str(self.user.worker)
        if kind == "uuid":
            return str(uuid.UUID(int=self.user.rng.getrandbits(128), version=4))
        return str(self.user.rng.randint(int(ref.a), int(ref.b)))

    def render(self, pieces: Pieces, escape: Callable[[str], str]) -> str:
        value = self._value
        return "".join([p if p.__class__ is str else escape(value(p)) for p in pieces])

    def next_request(self, wire: bool = False) -> Outgoing | None:
        """The next step rendered (with `wire`, as the bytes to send); raises StepFailed
        when a value cannot be placed."""
        if self.aborted or self.i >= len(self.flow.steps):
            return None
        step = self.step = self.flow.steps[self.i]
        self.i += 1
        jar = self.user.jar
        cookie = jar.header() if jar is not None and jar.cookies and not step.sets_cookie \
            else ""
        body = self.render(step.body, in_json if step.json_body else as_is).encode() \
            if step.body else b""
        wanted = step.wanted_jar if jar is not None else step.wanted
        if wire:
            value = self._value
            head = "".join([p if p.__class__ is str else p[1](value(p[0]))
                            for p in step.head])
            if cookie:
                head += f"Cookie: {cookie}\r\n"
            if body or step.method in ("POST", "PUT", "PATCH"):
                head += f"Content-Length: {len(body)}\r\n"
            data = (head + "\r\n").encode("latin-1") + body
            return Outgoing(step.k, step.method, "", [], body, step.wants_body, data, wanted)
        headers = step.fixed_headers + [(name, self.render(p, in_header))
                                        for name, p in step.headers]
        if cookie:
            headers.append(("Cookie", cookie))
        path = self.user.base_path + self.render(step.path, in_path)
        return Outgoing(step.k, step.method, path, headers, body, step.wants_body,
                        wanted=wanted)

    def answer(self, answer: Answer) -> tuple[str, int] | None:
        """None when the step succeeded, else (error kind, status) -- and the rest of the
        iteration is skipped."""
        step = self.step
        assert step is not None
        if self.user.jar is not None:
            self.user.jar.take(answer.headers)
        if answer.status not in step.accepted:
            self.aborted, self.failure = True, STATUS
            return STATUS, answer.status
        for var, extract in step.extracts:
            value = extract(answer, self.user.jar or _NO_COOKIES)
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
        return not self.aborted and self.i >= len(self.flow.steps)


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
                                  job.base_path))
        first += len(raw["steps"])
    feeders = {t["name"]: Feeder(t["columns"], t["rows"], t["order"], job.stream_index,
                                 job.stream_count) for t in job.data}

    def user(i: int) -> FlowUser:
        return FlowUser(job.user_offset + i, job.stream_index, feeders, job.base_path,
                        job.seed * 7 + i, job.cookies)
    return flows, user
