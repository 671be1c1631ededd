"""What a flow step takes from an answer: values extracted (JSONPath, regex, header, cookie),
compiled once, and each user's cookie jar.

JSON bodies are read with orjson (a tenth of the stdlib's time on a small document); a
document orjson refuses is read again by the stdlib, so what counts as valid JSON is the
stdlib's, as the scenario check's JSONPath (jsonpath-ng) expects.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson


def load_json(body: bytes) -> Any:
    """The document, or ValueError as json.loads raises it."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)   # what orjson refuses (NaN, huge integers) or ValueError


@dataclass(frozen=True)
class Extract:
    var: str
    kind: str      # json | regex | header | cookie
    expr: str


def compile_regex(expr: str) -> tuple[Any, str | None]:
    """(the compiled pattern, None) with RE2, whose time is linear in the answer's length
    whatever the pattern: `(a+)+$` against 40 a's and a b took Python's backtracking `re`
    34 s per answer and stalled the model. What RE2 refuses (backreferences, lookaround)
    is compiled by `re` instead, and the second item says so for validation to print.
    ValueError for what neither compiles."""
    import re2
    options = re2.Options()
    options.log_errors = False   # its refusal is ours to word, not a line on stderr
    try:
        return re2.compile(expr, options), None
    except re2.error as exc:
        refused = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) \
            else str(exc)
    try:
        pattern = re.compile(expr)
    except re.error as exc:
        raise ValueError(f"expected a regular expression, got {expr!r} ({exc})") from None
    return pattern, (f"RE2 cannot run {expr[:60]!r} ({refused}): Python's re runs it, "
                     "whose time can grow exponentially on a hostile answer")


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
                    value = load_json(answer.body)
                    for step in walk:
                        value = value[step]
                except (ValueError, LookupError, TypeError):
                    return None
                return value if isinstance(value, str) else json.dumps(value)
            return by_walk

        def by_json(answer: Answer, jar: CookieJar) -> str | None:
            try:
                doc = load_json(answer.body)
            except ValueError:
                return None
            found = path.find(doc)
            if not found:
                return None
            value = found[0].value
            return value if isinstance(value, str) else json.dumps(value)
        return by_json
    if spec.kind == "regex":
        pattern, _ = compile_regex(spec.expr)

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


NO_COOKIES = CookieJar()   # what extraction reads when cookies are off
