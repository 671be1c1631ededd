"""`{{ }}` templates: parsed once into pieces (literal text and references), compiled into
getters that a step renders by joining strings -- no parsing per request, in any model --
and each value escaped for where it lands (path, JSON body, header).

Kept apart from the runtime (flows.py) because the scenario check compiles templates too.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from harness.core.failures import TEMPLATE_FAILED

BUILTINS = ("user", "worker", "iteration", "uuid")
DEFAULT_ACCEPTED = frozenset(range(200, 400))   # success: any 2xx or 3xx, unless listed
# what these give is digits, or hex and dashes: safe in a path, a JSON string, a header
SAFE_KINDS = frozenset({"user", "worker", "iteration", "uuid", "randint"})

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
    """'Bearer {{token}}' -> ('Bearer ', Ref('var', 'token')); raises TemplateError.
    `{{ "text" }}` is literal text: `{{ "{{" }}` sends a `{{`."""
    pieces: list[str | Ref] = []
    pos = 0
    # adjacent literal pieces are merged below, so an escaped `{{` costs nothing at run time
    for m in _TEMPLATE.finditer(text):
        if m.start() > pos:
            pieces.append(text[pos:m.start()])
        inner = m.group(1).strip()
        if len(inner) >= 2 and inner[0] == inner[-1] == '"' and '"' not in inner[1:-1]:
            pieces.append(inner[1:-1])   # {{ "{{" }}: literal text, how a `{{` is written
        else:
            pieces.append(_ref(inner))
        pos = m.end()
    rest = text[pos:]
    if "{{" in rest:
        raise TemplateError(f"an unclosed {{{{ in {text!r:.60}")
    if rest:
        pieces.append(rest)
    return merge_text(pieces)


T = TypeVar("T")


def merge_text(parts: Iterable[T]) -> tuple[T, ...]:
    """Adjacent literal text joined into one piece, empty text dropped: a template (or a
    compiled step head) renders in as few pieces as it can."""
    merged: list[Any] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        elif part != "":
            merged.append(part)
    return tuple(merged)


def literal(text: str) -> str:
    """`text` as a template that renders to exactly `text` (every `{{` escaped)."""
    return text.replace("{{", '{{ "{{" }}')


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
        value.encode("ascii")
    except UnicodeEncodeError:
        raise StepFailed(TEMPLATE_FAILED, "a header value must be ASCII text") from None
    return value


class StepFailed(Exception):
    """A step that cannot be sent or whose answer does not do (its kind, for errors.csv)."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


# -- compiled: a reference becomes a getter of its value from the iteration ---------------

# a compiled template: literal text, or a callable taking the Iteration (flows.py) and
# giving the value, already escaped
Compiled = tuple[Any, ...]


def getter(ref: Ref) -> Callable[[Any], str]:
    """The value of `ref` in an iteration (it.values, it.rows, it.number, it.user)."""
    kind, a, b = ref.kind, ref.a, ref.b
    if kind == "var":
        return lambda it: it.values[a]
    if kind == "data":
        return lambda it: it.rows[a][b]
    if kind == "iteration":
        return lambda it: str(it.number)
    if kind == "user":
        return lambda it: it.user.user_str
    if kind == "worker":
        return lambda it: it.user.worker_str
    if kind == "uuid":
        return lambda it: str(uuid.UUID(int=it.user.rng.getrandbits(128), version=4))
    lo, hi = int(a), int(b)
    return lambda it: str(it.user.rng.randint(lo, hi))


def compile_pieces(pieces: Pieces, escape: Callable[[str], str]) -> Compiled:
    """Pieces with each reference a getter, escaped by `escape` unless its values never
    need it (numbers, uuids)."""
    out: list[Any] = []
    for p in pieces:
        if isinstance(p, str):
            out.append(p)
            continue
        get = getter(p)
        if p.kind in SAFE_KINDS or escape is as_is:
            out.append(get)
        else:
            out.append(lambda it, get=get: escape(get(it)))
    return tuple(out)


Render = Callable[[Any], str]


def static_text(compiled: Compiled) -> str | None:
    """The template's text when it holds no reference (it renders the same every time)."""
    return "".join(compiled) if all(isinstance(p, str) for p in compiled) else None


def renderer(compiled: Compiled) -> Render:
    """One function rendering the template: its pieces in one f-string, generated from
    identifiers only (never from the template's text), a quarter of a join's time."""
    text = static_text(compiled)
    if text is not None:
        return lambda it: text
    namespace: dict[str, Any] = {}
    terms = []
    for i, p in enumerate(compiled):
        namespace[f"p{i}"] = p
        terms.append(f"{{p{i}}}" if isinstance(p, str) else f"{{p{i}(it)}}")
    return eval('lambda it: f"' + "".join(terms) + '"', namespace)  # noqa: S307
