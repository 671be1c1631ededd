"""Scenario files: TOML -> frozen dataclasses. All validation lives here.

Errors read `FILE: [section].key: expected ..., got ...` so a user finds the line without a
traceback; the CLI maps ScenarioError to exit 2 before anything is started or sent.
`--set key.path=value` overrides and `${ENV}` / `${ENV:-default}` interpolation are applied
to the raw tables first, so they are validated like everything else.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.clients import MODELS, SUB_MODELS
from harness.clients.flows import (
    BUILTINS,
    FLOW_PREFIX,
    Extract,
    TemplateError,
    compile_extract,
    compile_template,
    refs,
)
from harness.errors import ScenarioError
from mockserver import checks
from mockserver.config import parse_config
from mockserver.errors import ConfigError
from mockserver.http import METHODS

ENGINES = tuple(dict.fromkeys(e for kind in MODELS.values() for e in kind.engines))
METRICS = ("requests", "failures", "rps", "error_rate", "p50_ms", "p90_ms", "p95_ms", "p99_ms",
           "p999_ms", "max_ms", "mean_ms")
DEFAULT_ACCEPTED = frozenset(range(200, 400))
# The valid ranges of what reaches a socket, a process or a file name (README lists them):
# checked at validate time, so nothing fails after the load was sent.
MAX_USERS = 100_000               # concurrency, per run and per model
MAX_RATE = 1_000_000.0            # requests/s, stage targets, weights
MAX_DURATION_S = 7 * 86400.0      # run, stage, warm-up; timeouts and think time: an hour
MAX_SEED = 2**32 - 1
MAX_REQUESTS = 10**12             # a count-bounded run
MAX_PROCESSES = 64
MAX_CPU_WORK = 10**9
MAX_BODY_BYTES = 16 << 20
MAX_HEADERS = 100
# run.name becomes part of a directory name: letters, digits, space . _ -, at most 100.
_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}")
# a path is sent as is: printable ASCII, no space (percent-encode anything else)
_PATH = re.compile(r"/[\x21-\x7e]{0,8191}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")
# a header value: visible ASCII, space, tab and obs-text (latin-1), never CR, LF or NUL
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]{0,8192}")
_REQUEST_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,200}")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_THRESHOLD = re.compile(r"^\s*(<=|>=|<|>|==)\s*(-?\d+(?:\.\d+)?)\s*$")
_TEMPLATE_REF = re.compile(r"\{\{.*?\}\}", re.S)
_DATA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class Stage:
    duration_s: float
    target: float


@dataclass(frozen=True)
class RequestSpec:
    name: str
    method: str = "GET"
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    weight: float = 1.0
    expect_status: tuple[int, ...] = ()  # empty: any 2xx or 3xx

    @cached_property
    def accepted_statuses(self) -> frozenset[int]:
        """The one rule for a successful status, in every model: the listed codes, else
        any 2xx or 3xx (redirects are answers; no model follows them)."""
        return frozenset(self.expect_status) if self.expect_status else DEFAULT_ACCEPTED


@dataclass(frozen=True)
class DataTable:
    name: str
    file: str                       # as written in the scenario (relative to it)
    order: str                      # per-user | sequential | random
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class StepSpec:
    request: RequestSpec            # its path, header values and body are templates
    extract: tuple[Extract, ...]
    think_time_s: float


@dataclass(frozen=True)
class FlowSpec:
    name: str
    weight: float
    steps: tuple[StepSpec, ...]

    @property
    def label(self) -> str:
        """Its row in the results: the whole iteration's latency, aborted ones failed."""
        return FLOW_PREFIX + self.name


@dataclass(frozen=True)
class ModelSpec:
    model: str
    engine: str = "aiohttp"       # ENGINES[0]
    processes: int = 2
    sub_model: str = "asyncio"    # SUB_MODELS[-1]
    cpu_work: int = 0
    concurrency: int | None = None

    @property
    def label(self) -> str:
        """The name a model carries in results: engine or sub-model where it matters."""
        return MODELS[self.model].label.format(model=self.model, engine=self.engine,
                                               sub_model=self.sub_model,
                                               processes=self.processes)


@dataclass(frozen=True)
class Threshold:
    metric: str
    op: str
    value: float
    request: str | None = None  # None: the Aggregated row

    def holds(self, actual: float) -> bool:
        return {"<": actual < self.value, "<=": actual <= self.value, ">": actual > self.value,
                ">=": actual >= self.value, "==": actual == self.value}[self.op]

    def __str__(self) -> str:
        where = f"[{self.request}] " if self.request else ""
        return f"{where}{self.metric} {self.op} {self.value:g}"


HANDSHAKES = ("per-connection", "per-request", "resume")
MAX_PEM_BYTES = 1 << 20


@dataclass(frozen=True)
class TlsSpec:
    """[target.tls], its files read into PEM text: a worker on another machine gets the
    text with its Job, never a path of the coordinator's machine."""

    verify: bool = True
    ca_pem: str | None = None        # extra CAs to trust (or the one certificate pinned)
    cert_pem: str | None = None      # client certificate (mutual TLS), with key_pem
    key_pem: str | None = None
    server_name: str | None = None   # SNI and the name verified, when the URL holds an IP
    pinned: bool = False             # ca_pem is the only certificate trusted (embedded mock)


@dataclass(frozen=True)
class Scenario:
    source: str
    name: str
    duration_s: float | None
    total_requests: int | None
    warmup_s: float
    seed: int
    workers: int
    timeout_s: float
    target_url: str | None
    mock: dict[str, Any] | None
    mode: str                      # "closed" or "open"
    concurrency: int
    rate: float | None
    stages: tuple[Stage, ...]
    think_time_s: float
    requests: tuple[RequestSpec, ...]
    models: tuple[ModelSpec, ...]
    thresholds: tuple[Threshold, ...]
    raw: dict[str, Any] = field(compare=False, repr=False)
    tls: TlsSpec = TlsSpec()
    handshake: str = "per-connection"   # HANDSHAKES: connection setup per connection/request
    mock_tls: bool = False              # the embedded mock serves HTTPS (self-signed, pinned)
    data: tuple[DataTable, ...] = ()
    flows: tuple[FlowSpec, ...] = ()
    cookies: bool = True                # flows: each user keeps a cookie jar

    @property
    def result_names(self) -> list[str]:
        """Every row name a model's results hold, in the recorder's order: requests,
        flow steps, then `flow:<name>` per flow."""
        return [r.name for r in self.requests] + \
            [s.request.name for f in self.flows for s in f.steps] + [f.label for f in self.flows]

    @property
    def run_seconds(self) -> float:
        """Measured time (after warm-up); with stages, their sum."""
        if self.stages:
            return sum(s.duration_s for s in self.stages)
        return self.duration_s or 0.0


# -- small validators ------------------------------------------------------------------------

class _Ctx:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str) -> ScenarioError:
        return ScenarioError(self.source, key, message)

    def table(self, raw: Any, key: str) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise self.fail(key, f"expected a table, got {_show(raw)}")
        return raw

    def keys(self, raw: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
        for key in raw:
            if key not in allowed:
                raise self.fail(f"{where}.{key}",
                                f"unknown key (expected one of {', '.join(allowed)})")

    def number(self, raw: Any, key: str, *, positive: bool = True, minimum: float = 0,
               maximum: float = MAX_RATE) -> float:
        return float(self._checked(raw, key, minimum, maximum, above=positive))

    def integer(self, raw: Any, key: str, minimum: int = 1, maximum: int = MAX_USERS) -> int:
        return self._checked(raw, key, minimum, maximum, integer=True)

    def _checked(self, raw: Any, key: str, minimum: float, maximum: float,
                 **kwargs: Any) -> Any:
        """mockserver's number check, its message under this file's and key's name."""
        try:
            return checks.number(raw, key, minimum, maximum, **kwargs)
        except ConfigError as exc:
            raise self.fail(key, exc.message) from None

    def string(self, raw: Any, key: str, pattern: re.Pattern[str] | None = None,
               expected: str = "a non-empty string") -> str:
        if not isinstance(raw, str) or not raw or (pattern and not pattern.fullmatch(raw)):
            raise self.fail(key, f"expected {expected}, got {_show(raw)}")
        return raw

    def duration(self, raw: Any, key: str, *, allow_zero: bool = False,
                 maximum: float = MAX_DURATION_S) -> float:
        seconds: float | None = None
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            seconds = float(raw)
        elif isinstance(raw, str) and (m := _DURATION.match(raw)):
            seconds = float(m.group(1)) * _UNITS[m.group(2)]
        if seconds is None or not math.isfinite(seconds) or seconds < 0 \
                or (seconds == 0 and not allow_zero) or seconds > maximum:
            raise self.fail(key, f'expected a duration like "10s", "500ms" or "2m", '
                                 f"at most {maximum:g} s, got {_show(raw)}")
        return seconds


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value)


# -- overrides and interpolation -------------------------------------------------------------

def apply_set(raw: dict[str, Any], assignment: str, source: str) -> None:
    """`key.path=value`: value parsed as TOML (numbers, booleans, arrays) else a string."""
    path, sep, text = assignment.partition("=")
    if not sep or not path.strip():
        raise ScenarioError(source, f"--set {assignment}", "expected KEY.PATH=VALUE")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    parts = path.strip().split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ScenarioError(source, f"--set {path}", f"no list item {part}")
            node = node[int(part)]
        else:
            node = node.setdefault(part, {})
        if not isinstance(node, dict | list):
            raise ScenarioError(source, f"--set {path}",
                                f"{'.'.join(parts[:i + 1])} is not a table")
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ScenarioError(source, f"--set {path}", f"no list item {last}")
        node[int(last)] = value
    else:
        node[last] = value


def apply_unset(raw: dict[str, Any], path: str, source: str) -> None:
    """`key.path`: remove that key (e.g. load.rate, to make an open-model file closed)."""
    parts = path.strip().split(".")
    node: Any = raw
    for part in parts[:-1]:
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise ScenarioError(source, f"--unset {path}", "no such key in the scenario")
    last = parts[-1]
    if isinstance(node, dict) and last in node:
        del node[last]
    elif isinstance(node, list) and last.isdigit() and int(last) < len(node):
        del node[int(last)]
    else:
        raise ScenarioError(source, f"--unset {path}", "no such key in the scenario")


def _key(parts: tuple[str | int, ...]) -> str:
    """("requests", 0, "path") -> "[[requests]][0].path", as the other messages name keys."""
    if not parts:
        return "scenario"
    head, *rest = parts
    out = f"[[{head}]]" if rest and isinstance(rest[0], int) else f"[{head}]"
    for part in rest:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def interpolate(value: Any, source: str, parts: tuple[str | int, ...] = ()) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string; a missing VAR is an error."""
    if isinstance(value, dict):
        return {k: interpolate(v, source, (*parts, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, source, (*parts, i)) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        def sub(m: re.Match[str]) -> str:
            env = os.environ.get(m.group(1))
            if env is None:
                if m.group(2) is None:
                    raise ScenarioError(source, _key(parts),
                                        f"environment variable {m.group(1)} is not set "
                                        "(use ${VAR:-default})")
                return m.group(2)
            return env
        return _ENV.sub(sub, value)
    return value


# -- sections ----------------------------------------------------------------------------------

def _requests(ctx: _Ctx, raw: Any, flows: bool = False) -> tuple[RequestSpec, ...]:
    if raw is None and flows:
        return ()
    if raw is None:
        raise ctx.fail("[[requests]]", "expected at least one request (or a [[flows]])")
    if not isinstance(raw, list) or (not raw and not flows):
        raise ctx.fail("[[requests]]", f"expected at least one request, got {_show(raw)}")
    out: list[RequestSpec] = []
    names: set[str] = set()
    for i, item in enumerate(raw):
        where = f"[[requests]][{i}]"
        item = ctx.table(item, where)
        ctx.keys(item, ("name", "method", "path", "headers", "body", "weight", "expect_status"),
                 where)
        out.append(_request(ctx, item, where, names, f"request{i}"))
    return tuple(out)


def _request(ctx: _Ctx, item: dict[str, Any], where: str, names: set[str],
             default_name: str, templated: bool = False) -> RequestSpec:
    """One request or flow step: name unique among all requests and steps, method, path,
    headers, body, weight, expect_status. A step's path is checked with its `{{ }}`
    references standing for one character (what they render to is percent-encoded)."""
    name = ctx.string(item.get("name", default_name), f"{where}.name", _REQUEST_NAME,
                      "a name of 1 to 200 characters, no control characters")
    if name in names or name == "Aggregated" or name.startswith(FLOW_PREFIX):
        raise ctx.fail(f"{where}.name", f'expected a unique name (not "Aggregated" nor '
                                        f'starting "{FLOW_PREFIX}"), got "{name}"')
    names.add(name)
    method = item.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise ctx.fail(f"{where}.method",
                       f"expected one of {', '.join(METHODS)}, got {_show(method)}")
    path = item.get("path", "/")
    shown = _TEMPLATE_REF.sub("x", path) if templated and isinstance(path, str) else path
    ctx.string(shown, f"{where}.path", _PATH, 'a path starting with "/" of printable ASCII '
                                              "without spaces (percent-encode the rest)")
    headers = ctx.table(item.get("headers", {}), f"{where}.headers")
    if len(headers) > MAX_HEADERS:
        raise ctx.fail(f"{where}.headers", f"expected at most {MAX_HEADERS} headers")
    for k, v in headers.items():
        if not _HEADER_NAME.fullmatch(k):
            raise ctx.fail(f"{where}.headers.{k}", "expected a header name (a token)")
        if not isinstance(v, str) or not _HEADER_VALUE.fullmatch(v):
            raise ctx.fail(f"{where}.headers.{k}",
                           "expected a header value of printable latin-1 text (no CR, "
                           f"LF or other control characters), got {_show(v)}")
    body = item.get("body", "")
    if not isinstance(body, str) or len(body.encode()) > MAX_BODY_BYTES:
        raise ctx.fail(f"{where}.body", f"expected a string of at most "
                                        f"{MAX_BODY_BYTES >> 20} MiB, got {_show(body)}")
    expect = item.get("expect_status", [])
    expect = [expect] if isinstance(expect, int) and not isinstance(expect, bool) else expect
    if not isinstance(expect, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) and 100 <= s <= 599 for s in expect):
        raise ctx.fail(f"{where}.expect_status",
                       f"expected a status code or a list of them, got {_show(expect)}")
    return RequestSpec(name, method.upper(), path, tuple(headers.items()), body.encode(),
                       ctx.number(item.get("weight", 1), f"{where}.weight"), tuple(expect))


_ORDERS = ("per-user", "sequential", "random")
MAX_DATA_BYTES = 64 << 20
MAX_STEPS = 100


def _data(ctx: _Ctx, raw: Any, base: Path | None) -> tuple[DataTable, ...]:
    """[[data]]: CSV files with a header row, read (UTF-8, quoting as the csv module
    reads it) when the scenario is validated; their rows travel with the Job."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ctx.fail("[[data]]", f"expected an array of tables, got {_show(raw)}")
    out: list[DataTable] = []
    for i, item in enumerate(raw):
        where = f"[[data]][{i}]"
        item = ctx.table(item, where)
        ctx.keys(item, ("name", "file", "order"), where)
        name = ctx.string(item.get("name"), f"{where}.name", _DATA_NAME,
                          "a name of letters, digits, _ or - (templates say {{name.column}})")
        if any(t.name == name for t in out):
            raise ctx.fail(f"{where}.name", f'expected a unique name, got "{name}" again')
        order = item.get("order", "per-user")
        if order not in _ORDERS:
            raise ctx.fail(f"{where}.order", f"expected one of {', '.join(_ORDERS)}, got "
                                             f"{_show(order)}")
        file = ctx.string(item.get("file"), f"{where}.file", expected="a CSV file path")
        columns: tuple[str, ...] = ()
        rows: tuple[tuple[str, ...], ...] = ()
        if base is not None:
            columns, rows = _read_csv(ctx, f"{where}.file", base / file)
        out.append(DataTable(name, file, order, columns, rows))
    return tuple(out)


def _read_csv(ctx: _Ctx, key: str, path: Path) -> tuple[tuple[str, ...],
                                                         tuple[tuple[str, ...], ...]]:
    import csv
    import io
    data = _read_file(ctx, key, path, MAX_DATA_BYTES, "a CSV file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ctx.fail(key, f"expected UTF-8 text: {path} (byte {exc.start})") from None
    try:
        table = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        raise ctx.fail(key, f"expected CSV: {path} ({exc})") from None
    table = [r for r in table if r]
    if not table:
        raise ctx.fail(key, f"expected a header row and at least one row: {path} is empty")
    header = tuple(c.strip() for c in table[0])
    if not all(_NAME_RE.fullmatch(c) for c in header) or len(set(header)) != len(header):
        raise ctx.fail(key, f"expected a header row of unique column names (letters, digits, "
                            f"_ or -): {path} has {list(header)!r:.100}")
    rows = table[1:]
    if not rows:
        raise ctx.fail(key, f"expected at least one row under the header: {path}")
    for n, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise ctx.fail(key, f"{path} line {n}: expected {len(header)} fields, got "
                                f"{len(row)}")
    return header, tuple(tuple(r) for r in rows)


def _flows(ctx: _Ctx, raw: Any, tables: tuple[DataTable, ...], names: set[str],
           recovered: bool) -> tuple[FlowSpec, ...]:
    """[[flows]] with their steps; every template compiled and every name it uses defined
    (a data column, a built-in, or a value an earlier step of the flow extracts)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ctx.fail("[[flows]]", f"expected an array of tables, got {_show(raw)}")
    columns = {t.name: set(t.columns) for t in tables}
    out: list[FlowSpec] = []
    for i, item in enumerate(raw):
        where = f"[[flows]][{i}]"
        item = ctx.table(item, where)
        ctx.keys(item, ("name", "weight", "steps"), where)
        name = ctx.string(item.get("name"), f"{where}.name", _REQUEST_NAME,
                          "a name of 1 to 200 characters, no control characters")
        if any(f.name == name for f in out):
            raise ctx.fail(f"{where}.name", f'expected a unique flow name, got "{name}" again')
        weight = ctx.number(item.get("weight", 1), f"{where}.weight")
        raw_steps = item.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps or len(raw_steps) > MAX_STEPS:
            raise ctx.fail(f"{where}.steps", f"expected 1 to {MAX_STEPS} [[flows.steps]], got "
                                             f"{_show(raw_steps)}")
        defined: set[str] = set()
        steps = []
        for j, st in enumerate(raw_steps):
            at = f"{where}.steps[{j}]"
            st = ctx.table(st, at)
            ctx.keys(st, ("name", "method", "path", "headers", "body", "expect_status",
                          "extract", "think_time"), at)
            request = _request(ctx, {k: v for k, v in st.items()
                                     if k not in ("extract", "think_time")}, at, names,
                               f"{name}-{j}", templated=True)
            for key, text in [("path", request.path), ("body", request.body.decode()),
                              *((f"headers.{k}", v) for k, v in request.headers)]:
                _check_template(ctx, f"{at}.{key}", text, columns, defined, recovered)
            extracts = _extracts(ctx, st.get("extract", {}), f"{at}.extract")
            defined |= {e.var for e in extracts}
            steps.append(StepSpec(request, extracts,
                                  ctx.duration(st.get("think_time", 0), f"{at}.think_time",
                                               allow_zero=True, maximum=3600)))
        out.append(FlowSpec(name, weight, tuple(steps)))
    return tuple(out)


def _check_template(ctx: _Ctx, key: str, text: str, columns: dict[str, set[str]],
                    defined: set[str], recovered: bool) -> None:
    try:
        pieces = compile_template(text)
    except TemplateError as exc:
        raise ctx.fail(key, str(exc)) from None
    for ref in refs(pieces):
        if ref.kind == "data":
            if ref.a not in columns:
                raise ctx.fail(key, f"{{{{{ref.shown}}}}}: no [[data]] named {ref.a!r}")
            if not recovered and ref.b not in columns[ref.a]:
                raise ctx.fail(key, f"{{{{{ref.shown}}}}}: the data file of {ref.a!r} has no "
                                    f"column {ref.b!r} (it has "
                                    f"{', '.join(sorted(columns[ref.a]))})")
        elif ref.kind == "var" and ref.a not in defined:
            raise ctx.fail(key, f"{{{{{ref.a}}}}} is not defined: not a built-in, and no "
                                "earlier step of this flow extracts it")


def _extracts(ctx: _Ctx, raw: Any, where: str) -> tuple[Extract, ...]:
    table = ctx.table(raw, where)
    out = []
    for var, how in table.items():
        if not _NAME_RE.fullmatch(var) or var in BUILTINS:
            raise ctx.fail(f"{where}.{var}", "expected a value name (letters, digits, _ or -; "
                                             "not a built-in)")
        how = ctx.table(how, f"{where}.{var}")
        if len(how) != 1 or next(iter(how)) not in ("json", "regex", "header", "cookie"):
            raise ctx.fail(f"{where}.{var}", 'expected one of { json = "$.path" }, '
                                             '{ regex = "..." }, { header = "Name" }, '
                                             f'{{ cookie = "name" }}, got {_show(how)}')
        kind, expr = next(iter(how.items()))
        expr = ctx.string(expr, f"{where}.{var}.{kind}")
        spec = Extract(var, kind, expr)
        try:
            compile_extract(spec)
        except ValueError as exc:
            raise ctx.fail(f"{where}.{var}.{kind}", str(exc)) from None
        out.append(spec)
    return tuple(out)


def _models(ctx: _Ctx, raw: Any) -> tuple[ModelSpec, ...]:
    if raw is None:
        return (ModelSpec("asyncio"),)
    if not isinstance(raw, list) or not raw:
        raise ctx.fail("[[models]]", f"expected at least one model, got {_show(raw)}")
    out = []
    for i, item in enumerate(raw):
        where = f"[[models]][{i}]"
        item = ctx.table(item, where)
        ctx.keys(item, ("model", "engine", "processes", "sub_model", "cpu_work", "concurrency"),
                 where)
        model = item.get("model")
        if not isinstance(model, str) or model not in MODELS:
            raise ctx.fail(f"{where}.model", f"expected one of {', '.join(MODELS)}, "
                                             f"got {_show(model)}")
        engine = item.get("engine", ENGINES[0])
        if engine not in ENGINES or (engine != ENGINES[0]
                                     and engine not in MODELS[model].engines):
            with_engines = " and ".join(m for m, k in MODELS.items() if len(k.engines) > 1)
            raise ctx.fail(f"{where}.engine", f"expected one of {', '.join(ENGINES)} "
                                              f"({with_engines} models only), got {_show(engine)}")
        sub = item.get("sub_model", SUB_MODELS[-1])
        if sub not in SUB_MODELS:
            raise ctx.fail(f"{where}.sub_model", "expected "
                           + " or ".join(f'"{m}"' for m in SUB_MODELS) + f", got {_show(sub)}")
        conc = item.get("concurrency")
        out.append(ModelSpec(
            model, engine,
            ctx.integer(item.get("processes", 2), f"{where}.processes", 1, MAX_PROCESSES), sub,
            ctx.integer(item.get("cpu_work", 0), f"{where}.cpu_work", 0, MAX_CPU_WORK),
            None if conc is None else ctx.integer(conc, f"{where}.concurrency")))
    labels = [m.label for m in out]
    if len(set(labels)) != len(labels):
        raise ctx.fail("[[models]]", f"expected each model once, got {', '.join(labels)}")
    return tuple(out)


def _thresholds(ctx: _Ctx, raw: Any, names: set[str]) -> tuple[Threshold, ...]:
    out = []
    table = ctx.table(raw, "[thresholds]")
    for key, value in table.items():
        if isinstance(value, dict):  # per request name
            if key not in names:
                raise ctx.fail(f"[thresholds.{key}]", f"expected a request name "
                                                      f"({', '.join(sorted(names))})")
            for metric, cond in value.items():
                out.append(_threshold(ctx, f"[thresholds.{key}].{metric}", metric, cond, key))
        else:
            out.append(_threshold(ctx, f"[thresholds].{key}", key, value, None))
    return tuple(out)


def _threshold(ctx: _Ctx, where: str, metric: str, cond: Any, request: str | None) -> Threshold:
    if metric not in METRICS:
        raise ctx.fail(where, f"unknown metric (expected one of {', '.join(METRICS)})")
    m = _THRESHOLD.match(cond) if isinstance(cond, str) else None
    if m is None:
        raise ctx.fail(where, f'expected a condition like "< 250", got {_show(cond)}')
    return Threshold(metric, m.group(1), float(m.group(2)), request)


@dataclass(frozen=True)
class _Target:
    url: str | None
    mock: dict[str, Any] | None
    mock_tls: bool
    tls: TlsSpec
    handshake: str


def _target(ctx: _Ctx, raw: dict[str, Any], base: Path | None) -> _Target:
    ctx.keys(raw, ("url", "mock", "tls", "handshake"), "[target]")
    url = raw.get("url")
    if url is not None:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ctx.fail("[target].url",
                           f"expected an http:// or https:// URL, got {_show(url)}")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ctx.fail("[target].url", f"expected a valid port, got {_show(url)}") from None
        url = url.rstrip("/")
    mock, mock_tls = None, False
    if "mock" in raw:
        table = dict(ctx.table(raw["mock"], "[target.mock]"))
        mock_tls = table.pop("tls", False)
        if not isinstance(mock_tls, bool):
            raise ctx.fail("[target.mock].tls", f"expected true or false, got {_show(mock_tls)}")
        mock = mock_config(table)
        try:
            parse_config(mock)
        except ConfigError as exc:
            raise ctx.fail(f"[target.mock].{exc.field.removeprefix('default.')}",
                           exc.message) from None
    handshake = raw.get("handshake", "per-connection")
    tls = TlsSpec()
    if "tls" in raw:
        table = ctx.table(raw["tls"], "[target.tls]")
        if isinstance(url, str) and url.startswith("http://"):
            raise ctx.fail("[target.tls]", f"TLS settings need an https:// URL, got {_show(url)}")
        if url is None and "mock" in raw and not mock_tls:
            raise ctx.fail("[target.tls]", "the embedded mock serves plain HTTP: set "
                                           "[target.mock].tls = true, or an https:// url")
        tls = _tls(ctx, table, base, pinned=url is None and mock_tls)
        if "handshake" in table:
            if "handshake" in raw:
                raise ctx.fail("[target.tls].handshake", "set in [target] already: give one")
            handshake = table["handshake"]
    where = "[target.tls].handshake" if "handshake" in raw.get("tls", {}) \
        else "[target].handshake"
    if handshake not in HANDSHAKES:
        raise ctx.fail(where, f"expected one of {', '.join(HANDSHAKES)}, got {_show(handshake)}")
    if handshake == "resume" and isinstance(url, str) and url.startswith("http://"):
        raise ctx.fail(where, '"resume" resumes TLS sessions: it needs an https:// URL')
    return _Target(url, mock, mock_tls, tls, handshake)


def _tls(ctx: _Ctx, table: dict[str, Any], base: Path | None, pinned: bool) -> TlsSpec:
    """[target.tls]: flags checked, files read (relative to the scenario file) and parsed
    as PEM, so a bad file is an exit-2 error before anything starts. `base` None (a run
    recovered from meta.json) keeps the checks but reads no file."""
    ctx.keys(table, ("verify", "ca", "cert", "key", "server_name", "handshake"),
             "[target.tls]")
    verify = table.get("verify", True)
    if not isinstance(verify, bool):
        raise ctx.fail("[target.tls].verify", f"expected true or false, got {_show(verify)}")
    if ("cert" in table) != ("key" in table):
        given, missing = ("cert", "key") if "cert" in table else ("key", "cert")
        raise ctx.fail(f"[target.tls].{given}",
                       f"expected {missing} too (a client certificate and its key)")
    if pinned and "ca" in table:
        raise ctx.fail("[target.tls].ca", "the embedded mock's own certificate is trusted "
                                          "automatically; ca is for a target of your own")
    server_name = table.get("server_name")
    if server_name is not None:
        server_name = ctx.string(server_name, "[target.tls].server_name", _HOSTNAME,
                                 "a host name like api.example.test")
    pems: dict[str, str | None] = {}
    for key in ("ca", "cert", "key"):
        pems[key] = None
        if key in table:
            path = ctx.string(table[key], f"[target.tls].{key}", expected="a file path")
            if base is not None:
                pems[key] = _pem_file(ctx, key, base / path)
    if pems["cert"] is not None and pems["key"] is not None:
        _check_client_pair(ctx, pems["cert"], pems["key"])
    return TlsSpec(verify=verify, ca_pem=pems["ca"], cert_pem=pems["cert"],
                   key_pem=pems["key"], server_name=server_name)


def _read_file(ctx: _Ctx, key: str, path: Path, limit: int, what: str) -> bytes:
    """A file a scenario names (relative to it), at most `limit` bytes: its contents, or
    one line naming the key and the path."""
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise ctx.fail(key, f"no such file: {path}") from None
    except OSError as exc:
        raise ctx.fail(key, f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise ctx.fail(key, f"expected {what} of at most {limit >> 20} MiB: {path}")
    return data


def _pem_file(ctx: _Ctx, key: str, path: Path) -> str:
    where = f"[target.tls].{key}"
    text = _read_file(ctx, where, path, MAX_PEM_BYTES, "a PEM file").decode("ascii",
                                                                               "replace")
    marker = "PRIVATE KEY-----" if key == "key" else "-----BEGIN CERTIFICATE-----"
    if marker not in text:
        kind = "a PEM private key" if key == "key" else "PEM certificates"
        raise ctx.fail(where, f"expected {kind}: {path}")
    if key == "ca":
        import ssl
        try:
            ssl.create_default_context(cadata=text)
        except (ssl.SSLError, ValueError) as exc:
            raise ctx.fail(where, f"expected PEM certificates: {path} ({exc})") from None
    return text


def _check_client_pair(ctx: _Ctx, cert_pem: str, key_pem: str) -> None:
    """The client certificate parses, the key is unencrypted, and they belong together."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError as exc:
        raise ctx.fail("[target.tls].cert", f"expected a PEM certificate ({exc})") from None
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except TypeError:
        raise ctx.fail("[target.tls].key", "expected an unencrypted private key (this one "
                                           "needs a password)") from None
    except (ValueError, Exception) as exc:  # cryptography raises several types here
        raise ctx.fail("[target.tls].key", f"expected a PEM private key ({exc})") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(serialization.Encoding.DER, public) != \
            key.public_key().public_bytes(serialization.Encoding.DER, public):
        raise ctx.fail("[target.tls].key", "this key does not belong to [target.tls].cert")


def mock_config(table: dict[str, Any]) -> dict[str, Any]:
    """[target.mock] holds the default profile's keys plus faults/routes/limits."""
    profile_keys = ("latency", "status", "body_bytes")
    out: dict[str, Any] = {"default": {k: v for k, v in table.items() if k in profile_keys}}
    out.update({k: v for k, v in table.items() if k not in profile_keys})
    return out


def parse_scenario(raw: dict[str, Any], source: str, base: Path | None = None) -> Scenario:
    """Validate a scenario's tables; `base` is the directory its relative paths (TLS
    files) are read from, None to read none (a run recovered from meta.json)."""
    ctx = _Ctx(source)
    raw = interpolate(raw, source)
    ctx.keys(raw, ("run", "target", "load", "requests", "models", "thresholds", "data",
                   "flows"), "scenario")
    run = ctx.table(raw.get("run", {}), "[run]")
    ctx.keys(run, ("name", "duration", "requests", "warmup", "seed", "workers", "timeout"),
             "[run]")
    load = ctx.table(raw.get("load", {}), "[load]")
    ctx.keys(load, ("mode", "concurrency", "rate", "stages", "think_time", "cookies"),
             "[load]")

    duration = ctx.duration(run["duration"], "[run].duration") if "duration" in run else None
    total = ctx.integer(run["requests"], "[run].requests", 1, MAX_REQUESTS) \
        if "requests" in run else None
    stages = []
    for i, st in enumerate(load.get("stages", [])):
        st = ctx.table(st, f"[load].stages[{i}]")
        ctx.keys(st, ("duration", "target"), f"[load].stages[{i}]")
        stages.append(Stage(ctx.duration(st.get("duration"), f"[load].stages[{i}].duration"),
                            ctx.number(st.get("target"), f"[load].stages[{i}].target",
                                       positive=False)))
    if duration is None and total is None and not stages:
        raise ctx.fail("[run]", 'expected duration = "10s" or requests = N (or [load].stages)')

    mode = load.get("mode", "open" if "rate" in load else "closed")
    if mode not in ("closed", "open"):
        raise ctx.fail("[load].mode", f'expected "closed" or "open", got {_show(mode)}')
    rate = ctx.number(load["rate"], "[load].rate") if "rate" in load else None
    if mode == "open" and rate is None and not stages:
        raise ctx.fail("[load].rate", "expected a positive number for the open model")
    default_conc = 100 if mode == "open" else 10
    concurrency = ctx.integer(load.get("concurrency", default_conc), "[load].concurrency")
    if stages and mode == "closed":
        concurrency = max(concurrency if "concurrency" in load else 1,
                          math.ceil(max(s.target for s in stages)) or 1)
    target = _target(ctx, ctx.table(raw.get("target", {}), "[target]"), base)
    models = _models(ctx, raw.get("models"))
    for i, m in enumerate(models):
        if not MODELS[m.model].open_model and mode == "open":
            raise ctx.fail(f"[[models]][{i}].model", f'"{m.model}" runs the closed model only '
                                                     '(it has no open, rate-based mode)')
        if m.model.startswith("locust") and target.tls.server_name:
            raise ctx.fail(f"[[models]][{i}].model",
                           f'"{m.model}" cannot set [target.tls].server_name (Locust\'s '
                           "clients name the URL's host): use a URL with the host name")
        if m.model.startswith("locust") and target.handshake != "per-connection":
            raise ctx.fail(f"[[models]][{i}].model",
                           f'"{m.model}" keeps connections alive only (Locust has no '
                           f'per-request or resumed handshakes): handshake = '
                           f'"{target.handshake}" needs one of our models')
    requests = _requests(ctx, raw.get("requests"), flows="flows" in raw)
    data = _data(ctx, raw.get("data"), base)
    names = {r.name for r in requests}
    flows = _flows(ctx, raw.get("flows"), data, names, recovered=base is None)
    if not requests and not flows:
        raise ctx.fail("[[requests]]", "expected at least one request or flow")
    cookies = load.get("cookies", True)
    if not isinstance(cookies, bool):
        raise ctx.fail("[load].cookies", f"expected true or false, got {_show(cookies)}")
    workers = ctx.integer(run.get("workers", 1), "[run].workers")
    if workers > 64:
        raise ctx.fail("[run].workers", f"expected at most 64 local workers, got {workers}")
    return Scenario(
        source=source,
        name=ctx.string(run.get("name", _default_name(source)), "[run].name", _RUN_NAME,
                        "1 to 100 letters, digits, spaces or . _ - (it names the results "
                        "directory)"),
        duration_s=duration,
        total_requests=total,
        warmup_s=ctx.duration(run.get("warmup", 0), "[run].warmup", allow_zero=True),
        seed=ctx.integer(run.get("seed", 1), "[run].seed", 0, MAX_SEED),
        workers=workers,
        timeout_s=ctx.duration(run.get("timeout", "10s"), "[run].timeout", maximum=3600),
        target_url=target.url,
        mock=target.mock,
        mode=mode,
        concurrency=concurrency,
        rate=rate,
        stages=tuple(stages),
        think_time_s=ctx.duration(load.get("think_time", 0), "[load].think_time",
                                  allow_zero=True, maximum=3600),
        requests=requests,
        models=models,
        thresholds=_thresholds(ctx, raw.get("thresholds", {}),
                               names | {f.label for f in flows}),
        raw=raw,
        tls=target.tls,
        handshake=target.handshake,
        mock_tls=target.mock_tls,
        data=data,
        flows=flows,
        cookies=cookies,
    )


def _default_name(source: str) -> str:
    """The file's stem, made fit for a directory name."""
    return re.sub(r"[^A-Za-z0-9 ._-]+", "-", Path(source).stem).strip("-. ")[:100] or "run"


def load_scenario(path: str | Path, overrides: list[str] = (),
                  removals: list[str] = ()) -> Scenario:
    """Read, override (removals first, then overrides), interpolate and validate a
    scenario file."""
    path = Path(path)
    source = path.name
    try:
        raw = checks.read_document(path, "TOML")
    except ValueError as exc:
        raise ScenarioError(str(path) if "cannot read" in str(exc) else source, "file",
                            str(exc)) from None
    for key in removals:
        apply_unset(raw, key, source)
    for assignment in overrides:
        apply_set(raw, assignment, source)
    if problem := checks.depth_problem(raw):  # --set can nest too
        raise ScenarioError(source, "scenario", problem)
    return parse_scenario(raw, source, path.parent)
