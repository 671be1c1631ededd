"""`harness import-har`: a browser recording (HAR 1.2) -> a scenario with one flow.

Kept: requests to the recording's main host (the first HTML page's, else the most
frequent), in order, with their method, path and query, body and the headers that say
what the request is (Accept, Content-Type, custom X- headers). Left out: static assets
(unless --include-static), cookies (each user's jar carries them, as the browser's did),
credentials (Authorization, Proxy-Authorization, X-Api-Key... unless --keep-auth), and
what every model sets itself (Host, User-Agent, Content-Length, Accept-Encoding,
Connection, the browser's Sec-/priority hints). Think times are the recorded gaps
between one answer and the next request. The scenario is validated before it is written.
"""

from __future__ import annotations

import re
from base64 import b64encode
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from harness.core.templates import literal
from harness.errors import UsageError
from harness.scenario.ctx import show
from harness.scenario.journeys import MAX_STEPS
from harness.scenario.spec import HEADER_NAME, HEADER_VALUE, MAX_HEADERS
from mockserver import checks

MAX_HAR_BYTES = 256 << 20
STATIC_TYPES = ("image/", "font/", "text/css", "javascript", "video/", "audio/",
                "application/wasm")
STATIC_EXT = re.compile(r"\.(css|js|mjs|map|png|jpe?g|gif|svg|ico|webp|avif|woff2?|ttf|otf|"
                        r"eot|mp4|webm|mp3|wasm)$", re.I)
DROP = {"host", "user-agent", "content-length", "accept-encoding", "connection", "cookie",
        "keep-alive", "te", "upgrade-insecure-requests", "priority", "pragma",
        "cache-control", "dnt", "referer", "origin", "if-none-match", "if-modified-since"}
AUTH = {"authorization", "proxy-authorization", "x-api-key", "x-auth-token",
        "x-csrf-token", "x-xsrf-token"}
MAX_THINK_S = 60.0
MAX_SCENARIO_BYTES = checks.MAX_DOCUMENT_BYTES
MAX_STEP_BODY = 1 << 20   # a recorded body beyond it is left out: the scenario must load


class HarError(UsageError):
    """A file that is not a usable HAR recording: names the file and what is wrong."""


FIRST_TRY = "10s"   # an imported journey's first run: short, it is a first try


def import_har(path: Path, *, include_static: bool = False, keep_auth: bool = False,
               notes: list[str] | None = None) -> dict[str, Any]:
    """The scenario (as TOML tables) a recording makes; raises HarError. What a user must
    know about what was left out (a credential, above all) is appended to `notes`."""
    try:
        doc = checks.read_document(path, "JSON", MAX_HAR_BYTES)
    except OSError as exc:
        raise HarError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise HarError(f"{path}: not a HAR file: {exc}") from None
    entries = doc.get("log", {}).get("entries") if isinstance(doc, dict) and \
        isinstance(doc.get("log"), dict) else None
    if not isinstance(entries, list) or not entries:
        raise HarError(f"{path}: log.entries: expected a list of recorded requests")
    parsed = []
    for i, raw_entry in enumerate(entries):   # import what can be, say what could not
        try:
            parsed.append(_entry(path, i, raw_entry))
        except HarError as exc:
            if notes is None or len(entries) == 1:
                raise
            notes.append(f"note: left out: {exc}")
    if not parsed:
        raise HarError(f"{path}: log.entries: no entry could be imported")
    origin = _main_origin(parsed)
    steps: list[dict[str, Any]] = []
    names: set[str] = set()
    stripped: list[tuple[str, str]] = []   # (step name, header) of credentials left out
    escaped: list[str] = []                 # where recorded text held `${` or `{{`
    last_end: float | None = None
    for e in sorted((e for e in parsed if e["origin"] == origin), key=lambda e: e["start"]):
        if not include_static and e["static"]:
            continue
        if steps and last_end is not None:
            gap = e["start"] - last_end
            if gap > 0.01:
                steps[-1]["think_time"] = f"{min(gap, MAX_THINK_S) * 1000:.0f}ms"
        last_end = e["start"] + e["time_s"]
        if len(steps) == MAX_STEPS:
            left_over = [x for x in parsed if x["origin"] == origin and x["start"] >= e["start"]
                         and (include_static or not x["static"])]
            if notes is not None:
                notes.append(f"note: left out: {path}: log.entries[{e['index']}] and "
                             f"{len(left_over) - 1} later request(s) to {origin}: a flow "
                             f"holds at most {MAX_STEPS} steps (the first {MAX_STEPS} kept)")
            break
        if len(e["body"].encode()) > MAX_STEP_BODY:
            if notes is not None:
                notes.append(f"note: left out: {path}: log.entries[{e['index']}].request."
                             f"postData.text: over {MAX_STEP_BODY >> 20} MiB (a scenario "
                             f"file holds at most {MAX_SCENARIO_BYTES >> 20} MiB)")
            continue
        if e["userinfo"] is not None and not keep_auth:
            stripped.append((f"log.entries[{e['index']}]", "user:password in the URL"))
        steps.append(_step(e, len(steps), names, keep_auth, stripped, escaped,
                           skipped := []))
        if notes is not None:
            notes.extend(f"note: left out: {path}: log.entries[{e['index']}]."
                         f"request.headers[{j}] ({show(k[:40])}): {why}" for j, k, why in skipped)
    if stripped and notes is not None:
        notes.append(f"note: {len(stripped)} step(s) lost a credential header ("
                     f"{', '.join(sorted({h for _, h in stripped}))}): "
                     + "; ".join(f"{n}" for n, _ in stripped[:5])
                     + (f" and {len(stripped) - 5} more" if len(stripped) > 5 else "")
                     + ". A journey that needs it will fail (401/403): give --keep-auth to "
                       "keep recorded credentials, or set the header from an extracted "
                       "token")
    if escaped and notes is not None:
        notes.append("note: recorded text kept literal (a `${` escaped as `$${`, a `{{` "
                     "as `{{ \"{{\" }}`, so nothing is filled from your environment or "
                     "read as a template): " + "; ".join(escaped[:5])
                     + (f" and {len(escaped) - 5} more" if len(escaped) > 5 else ""))
    if not steps:
        raise HarError(f"{path}: no request to {origin} left to replay (static assets are "
                       "left out unless --include-static)")
    return {
        "run": {"name": _run_name(path), "duration": FIRST_TRY},
        "target": {"url": origin},
        "load": {"concurrency": 1},
        "flows": [{"name": "recording", "steps": steps}],
        "models": [{"model": "asyncio"}],
    }


def _entry(path: Path, i: int, raw: Any) -> dict[str, Any]:
    where = f"{path}: log.entries[{i}]"
    try:
        req, resp = raw["request"], raw.get("response", {})
        url = urlsplit(req["url"])
        method = str(req["method"]).upper()
        start = datetime.fromisoformat(str(raw["startedDateTime"]).replace("Z", "+00:00"))
        headers = [(str(h["name"]), str(h["value"])) for h in req.get("headers", [])]
        body = (req.get("postData") or {}).get("text") or ""
        if not isinstance(body, str):   # never a Python repr on the wire
            raise HarError(f"{where}.request.postData.text: expected a string, got "
                           f"{type(body).__name__}")
        mime = str((resp.get("content") or {}).get("mimeType", ""))
        took = float(raw.get("time") or 0) / 1000.0
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise HarError(f"{where}: expected request.url, request.method and startedDateTime "
                       f"({type(exc).__name__}: {str(exc)[:80]})") from None
    shown = show(str(req["url"]))
    try:
        port = f":{url.port}" if url.port else ""
    except ValueError:
        raise HarError(f"{where}.request.url: expected a port 1-65535, got {shown}") from None
    if url.scheme not in ("http", "https") or not url.hostname:
        raise HarError(f"{where}.request.url: expected an http(s) URL, got {shown}")
    for what, text in (("request.url", str(req["url"])), ("postData.text", str(body)),
                       *((f"header {k}", f"{k}{v}") for k, v in headers)):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:   # a lone surrogate: JSON allows it, TOML cannot hold it
            raise HarError(f"{where}: {what}: not valid Unicode text (a lone surrogate)") \
                from None
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname   # IPv6
    return {"origin": f"{url.scheme}://{host}{port}", "method": method, "index": i,
            "userinfo": (url.username or "", url.password or "") if url.username else None,
            "target": url.path or "/", "query": url.query, "headers": headers,
            "body": str(body), "mime": mime, "start": start.timestamp(), "time_s": took,
            "static": any(t in mime for t in STATIC_TYPES) or
            bool(STATIC_EXT.search(url.path or ""))}


def _main_origin(entries: list[dict[str, Any]]) -> str:
    for e in entries:
        if "text/html" in e["mime"]:
            return e["origin"]
    counts: dict[str, int] = {}
    for e in entries:
        counts[e["origin"]] = counts.get(e["origin"], 0) + 1
    return max(counts, key=lambda o: counts[o])


def _step(e: dict[str, Any], i: int, names: set[str], keep_auth: bool,
          stripped: list[tuple[str, str]], escaped: list[str],
          skipped: list[tuple[int, str, str]]) -> dict[str, Any]:
    """One recorded request as a flow step; a header that cannot be one is left out and
    put in `skipped` (index, name, why), the rest of the request kept."""
    # a recorded path is sent as recorded: anything outside printable ASCII (and a `{`,
    # which our templates would read) is percent-encoded
    safe = "/:@!$&'()*+,;=-._~%?"
    path = quote(e["target"], safe=safe) + (f"?{quote(e['query'], safe=safe)}"
                                            if e["query"] else "")
    # a name is no template, but the loader fills `${...}` in every string
    name = f"{i + 1:02d} {e['method']} {e['target']}".replace("${", "$${")[:200]
    while name in names:
        name += "'"
    names.add(name)
    headers = {}
    if e["userinfo"] is not None and keep_auth:   # as a browser sends user:password@
        pair = f"{unquote(e['userinfo'][0])}:{unquote(e['userinfo'][1])}"
        headers["Authorization"] = "Basic " + b64encode(pair.encode()).decode()
    for j, (key, value) in enumerate(e["headers"]):
        low = key.lower()
        if low in AUTH and not keep_auth:
            stripped.append((name, key))
            continue
        if key.startswith(":") or low in DROP or low.startswith("sec-"):
            continue
        if not HEADER_NAME.fullmatch(key):
            skipped.append((j, key, "not a header name (a token)"))
        elif not HEADER_VALUE.fullmatch(value):
            skipped.append((j, key, "its value is not printable ASCII"))
        elif len(headers) >= MAX_HEADERS:
            skipped.append((j, key, f"a request holds at most {MAX_HEADERS} headers"))
        else:
            headers[key] = _kept(value, f"{name}: header {key}", escaped)
    step: dict[str, Any] = {"name": name, "method": e["method"],
                            "path": _kept(path, f"{name}: path", escaped)}
    if headers:
        step["headers"] = headers
    if e["body"]:
        step["body"] = _kept(e["body"], f"{name}: body", escaped)
    return step


def _kept(text: str, where: str, escaped: list[str]) -> str:
    """Recorded text kept literal: a `${` would be filled from the replaying user's
    environment (a recorded `${SECRET_TOKEN}` sent to the recorded host), a `{{` read as a
    template. Both are escaped (`$${`, `{{ "{{" }}`) and `where` is noted."""
    if "${" not in text and "{{" not in text:
        return text
    escaped.append(where)
    return literal(text.replace("${", "$${"))


def _run_name(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9 ._-]+", "-", path.stem).strip("-. ")[:100] or "recording"


def write_scenario(tables: dict[str, Any], out: Path | None) -> str:
    """The scenario as TOML, checked by the scenario validator, written to `out` (beside
    and renamed over) or returned for stdout."""
    import tomli_w

    from harness.scenario import parse_scenario
    text = "# made by harness import-har: one flow, the recording's requests in order\n" + \
        tomli_w.dumps(tables)
    try:
        document = checks.parse_document(text, "TOML")
    except ValueError as exc:   # too large for a scenario file
        raise HarError(f"{out or 'stdout'}: the scenario made would be {exc}: import part of "
                       "the recording") from None
    parse_scenario(document, out.name if out else "stdout")
    if out is not None:
        tmp = out.with_name(out.name + ".tmp")
        try:
            tmp.write_text(text)
            tmp.replace(out)
        except OSError as exc:
            raise HarError(f"-o {out}: cannot write: {exc.strerror or exc}") from None
    return text
