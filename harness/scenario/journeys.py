"""[[data]] and [[flows]]: test data read and checked, every template compiled and every
name it uses defined, before anything is sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.core.datatable import MAX_DATA_BYTES, CsvError, DataRows, split_header
from harness.core.extraction import Extract, compile_extract, compile_regex
from harness.core.steps import HTTP, STEP_KINDS
from harness.core.templates import (
    BUILTINS,
    StepFailed,
    TemplateError,
    compile_template,
    in_header,
    refs,
)
from harness.scenario.ctx import Ctx, read_file, show
from harness.scenario.requests import parse_request
from harness.scenario.spec import (
    NAME_RE,
    REQUEST_NAME,
    DataTable,
    FlowSpec,
    StepSpec,
)

_ORDERS = ("per-user", "sequential", "random")
MAX_STEPS = 100


def parse_data(ctx: Ctx, raw: Any, base: Path | None) -> tuple[DataTable, ...]:
    """[[data]]: CSV files with a header row, read (UTF-8, quoting as the csv module
    reads it) when the scenario is validated; their rows travel with the Job."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ctx.fail("[[data]]", f"expected an array of tables, got {show(raw)}")
    out: list[DataTable] = []
    for _, where, item in ctx.entries(raw, "[[data]]", ("name", "file", "order")):
        name = ctx.string(item.get("name"), f"{where}.name", NAME_RE,
                          "a name of letters, digits, _ or - (templates say {{name.column}})")
        if any(t.name == name for t in out):
            raise ctx.fail(f"{where}.name", f'expected a unique name, got "{name}" again')
        order = item.get("order", "per-user")
        if order not in _ORDERS:
            raise ctx.fail(f"{where}.order", f"expected one of {', '.join(_ORDERS)}, got "
                                             f"{show(order)}")
        file = ctx.string(item.get("file"), f"{where}.file", expected="a CSV file path")
        columns: tuple[str, ...] = ()
        rows: tuple[tuple[str, ...], ...] = ()
        if base is not None:
            columns, rows = _read_csv(ctx, f"{where}.file", base / file)
        out.append(DataTable(name, file, order, columns, rows))
    return tuple(out)


def _read_csv(ctx: Ctx, key: str, path: Path) -> tuple[tuple[str, ...], DataRows]:
    """Columns and rows of a data file, streamed: UTF-8 checked a chunk at a time, rows
    held as the file's bytes and offsets (core.datatable), so a 64 MiB file of 16 M rows
    validates in seconds and a few hundred MiB."""
    data = read_file(ctx, key, path, MAX_DATA_BYTES, "a CSV file")
    bad = _utf8_problem(data)
    if bad is not None:
        raise ctx.fail(key, f"expected UTF-8 text: {path} (byte {bad})")
    try:
        fields, offset = split_header(data)
    except CsvError as exc:
        raise ctx.fail(key, f"{exc}: {path}") from None
    if not fields:
        raise ctx.fail(key, f"expected a header row and at least one row: {path} is empty")
    header = tuple(c.strip() for c in fields)
    # a file that is not a CSV of names (/proc/self/environ, a .env, a shadow file) is
    # named, never echoed: at most the first SHOWN_COLUMN characters of the bad column
    for i, c in enumerate(header):
        if not NAME_RE.fullmatch(c):
            cut = show(c[:SHOWN_COLUMN]) + ("..." if len(c) > SHOWN_COLUMN else "")
            raise ctx.fail(key, f"expected a header row of column names (letters, digits, "
                                f"_ or -): {path} column {i + 1} is {cut}")
        if c in header[:i]:
            raise ctx.fail(key, f"expected unique column names: {path} has "
                                f"{show(c)} twice")
    try:
        rows = DataRows(data, len(header), offset)
    except CsvError as exc:
        raise ctx.fail(key, f"{path} {exc}") from None
    if not len(rows):
        raise ctx.fail(key, f"expected at least one row under the header: {path}")
    return header, rows


def _utf8_problem(data: bytes) -> int | None:
    """The offset of the first byte that is not UTF-8, or None; decoded 1 MiB at a time
    (a file-sized str is 64-256 MiB more)."""
    import codecs
    decoder = codecs.getincrementaldecoder("utf-8")()
    step = 1 << 20
    for at in range(0, len(data), step):
        pending = len(decoder.getstate()[0])   # a sequence cut by the previous chunk
        try:
            decoder.decode(data[at:at + step], final=at + step >= len(data))
        except UnicodeDecodeError as exc:
            return at - pending + exc.start
    return None


SHOWN_COLUMN = 16


def parse_flows(ctx: Ctx, raw: Any, tables: tuple[DataTable, ...], names: set[str],
           recovered: bool) -> tuple[FlowSpec, ...]:
    """[[flows]] with their steps; every template compiled and every name it uses defined
    (a data column, a built-in, or a value an earlier step of the flow extracts)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ctx.fail("[[flows]]", f"expected an array of tables, got {show(raw)}")
    columns = {t.name: set(t.columns) for t in tables}
    out: list[FlowSpec] = []
    for _, where, item in ctx.entries(raw, "[[flows]]", ("name", "weight", "steps")):
        name = ctx.string(item.get("name"), f"{where}.name", REQUEST_NAME,
                          "a name of 1 to 200 characters, no control characters")
        if any(f.name == name for f in out):
            raise ctx.fail(f"{where}.name", f'expected a unique flow name, got "{name}" again')
        weight = ctx.number(item.get("weight", 1), f"{where}.weight")
        raw_steps = item.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps or len(raw_steps) > MAX_STEPS:
            raise ctx.fail(f"{where}.steps", f"expected 1 to {MAX_STEPS} [[flows.steps]], got "
                                             f"{show(raw_steps)}")
        defined: set[str] = set()
        steps = []
        for j, at, st in ctx.entries(raw_steps, f"{where}.steps",
                                     ("name", "method", "path", "headers", "body",
                                      "expect_status", "extract", "think_time", "kind")):
            kind = st.get("kind", HTTP)
            if kind not in STEP_KINDS:
                raise ctx.fail(f"{at}.kind", f"expected one of {', '.join(STEP_KINDS)}, got "
                                             f"{show(kind)}")
            request = parse_request(ctx, {k: v for k, v in st.items()
                                     if k not in ("extract", "think_time", "kind")}, at, names,
                               f"{name}-{j}", templated=True)
            for key, text in [("path", request.path), ("body", request.body.decode()),
                              *((f"headers.{k}", v) for k, v in request.headers)]:
                _check_template(ctx, f"{at}.{key}", text, columns, defined, recovered)
                if key.startswith("headers.") and not recovered:
                    _check_header_values(ctx, f"{at}.{key}", text, tables)
            extracts = _extracts(ctx, st.get("extract", {}), f"{at}.extract")
            defined |= {e.var for e in extracts}
            steps.append(StepSpec(request, extracts,
                                  ctx.duration(st.get("think_time", 0), f"{at}.think_time",
                                               allow_zero=True, maximum=3600), kind))
        out.append(FlowSpec(name, weight, tuple(steps)))
    return tuple(out)


def _check_header_values(ctx: Ctx, key: str, text: str,
                         tables: tuple[DataTable, ...]) -> None:
    """Every row of a data column a header template uses must fit in a header (ASCII, no
    CR, LF or NUL): refused now, naming the file and the row, not at run time where every
    iteration that drew the row failed `template_failed`. The value is not echoed."""
    by_name = {t.name: t for t in tables}
    for ref in refs(compile_template(text)):
        table = by_name.get(ref.a) if ref.kind == "data" else None
        if table is None or ref.b not in table.columns:
            continue
        col = table.columns.index(ref.b)
        for i in table.rows.suspects(b"\0\r"):
            n = i + 1
            try:
                in_header(table.rows[i][col])
            except StepFailed:
                raise ctx.fail(key, f"{{{{{ref.shown}}}}}: {table.file} data row {n}, column "
                                    f"{ref.b!r}: expected ASCII text without CR, LF or NUL "
                                    "(it goes into a header)") from None


def _check_template(ctx: Ctx, key: str, text: str, columns: dict[str, set[str]],
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


def _extracts(ctx: Ctx, raw: Any, where: str) -> tuple[Extract, ...]:
    table = ctx.table(raw, where)
    out = []
    for var, how in table.items():
        if not NAME_RE.fullmatch(var) or var in BUILTINS:
            raise ctx.fail(f"{where}.{var}", "expected a value name (letters, digits, _ or -; "
                                             "not a built-in)")
        how = ctx.table(how, f"{where}.{var}")
        if len(how) != 1 or next(iter(how)) not in ("json", "regex", "header", "cookie"):
            raise ctx.fail(f"{where}.{var}", 'expected one of { json = "$.path" }, '
                                             '{ regex = "..." }, { header = "Name" }, '
                                             f'{{ cookie = "name" }}, got {show(how)}')
        kind, expr = next(iter(how.items()))
        expr = ctx.string(expr, f"{where}.{var}.{kind}")
        spec = Extract(var, kind, expr)
        try:
            compile_extract(spec)
            if kind == "regex" and (note := compile_regex(expr)[1]):
                ctx.notes.append(f"{ctx.source}: {where}.{var}.regex: {note}")
        except ValueError as exc:
            raise ctx.fail(f"{where}.{var}.{kind}", str(exc)) from None
        out.append(spec)
    return tuple(out)
