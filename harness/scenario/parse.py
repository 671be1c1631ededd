"""A scenario file -> a Scenario: every section checked, in one pass, before anything
starts."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from harness.core.registry import MODELS, SUB_MODELS
from harness.errors import ScenarioError
from harness.scenario.capacity import parse_capacity
from harness.scenario.ctx import Ctx, show
from harness.scenario.journeys import parse_data, parse_flows
from harness.scenario.overrides import apply_set, apply_unset, interpolate
from harness.scenario.requests import parse_requests
from harness.scenario.spec import (
    ARRIVALS,
    DEFAULT_MAX_BODY,
    ENGINES,
    MAX_CPU_WORK,
    MAX_MAX_BODY,
    MAX_PROCESSES,
    MAX_REQUESTS,
    MAX_SEED,
    MAX_STREAMS,
    RUN_NAME,
    ModelSpec,
    Scenario,
    Stage,
)
from harness.scenario.target import parse_target
from harness.scenario.thresholds import parse_thresholds
from mockserver import checks


def _models(ctx: Ctx, raw: Any) -> tuple[ModelSpec, ...]:
    if raw is None:
        return (ModelSpec("asyncio"),)
    if not isinstance(raw, list) or not raw:
        raise ctx.fail("[[models]]", f"expected at least one model, got {show(raw)}")
    out = []
    for _, where, item in ctx.entries(raw, "[[models]]", ("model", "engine", "processes",
                                                        "sub_model", "cpu_work",
                                                        "concurrency")):
        model = item.get("model")
        if not isinstance(model, str) or model not in MODELS:
            raise ctx.fail(f"{where}.model", f"expected one of {', '.join(MODELS)}, "
                                             f"got {show(model)}")
        engine = item.get("engine", ENGINES[0])
        if engine not in ENGINES or (engine != ENGINES[0]
                                     and engine not in MODELS[model].engines):
            with_engines = " and ".join(m for m, k in MODELS.items() if len(k.engines) > 1)
            raise ctx.fail(f"{where}.engine", f"expected one of {', '.join(ENGINES)} "
                                              f"({with_engines} models only), got {show(engine)}")
        sub = item.get("sub_model", SUB_MODELS[-1])
        if sub not in SUB_MODELS:
            raise ctx.fail(f"{where}.sub_model", "expected "
                           + " or ".join(f'"{m}"' for m in SUB_MODELS) + f", got {show(sub)}")
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


def _http2(ctx: Ctx, http: str, load: dict[str, Any], models: tuple[ModelSpec, ...]) -> int:
    """[target].http against the models that can speak it, and
    [load].streams_per_connection (HTTP/2 only): the streams value."""
    streams = ctx.integer(load.get("streams_per_connection", 1),
                          "[load].streams_per_connection", 1, MAX_STREAMS)
    if streams > 1 and http == "1.1":
        raise ctx.fail("[load].streams_per_connection", 'shares a connection as HTTP/2 '
                                                       'streams: set [target].http = "2"')
    if http == "1.1":
        return streams
    able = ", ".join(f'{name} (engine "fast")' if kind.engines else
                     f'{name} (sub_model "thread")' if kind.wraps else name
                     for name, kind in MODELS.items()
                     if kind.wraps or kind.speaks_http2("fast"))
    for i, m in enumerate(models):
        kind = MODELS[m.model]
        sub = MODELS[m.sub_model] if kind.wraps else kind
        if sub.speaks_http2(m.engine):
            if streams > 1 and not sub.transport(m.engine, "2").shares:
                raise ctx.fail("[load].streams_per_connection",
                               f'"{m.model}" sends HTTP/2 through httpx, whose sync client '
                               "opens streams out of order when threads share a connection "
                               "(a server must refuse them): it keeps one user a "
                               'connection, so use 1, or the fast engine (asyncio or '
                               'uvloop with engine = "fast")')
            continue
        if not sub.transports:
            why = "Locust's clients speak HTTP/1.1 only"
        elif kind.wraps:
            why = "its asyncio processes send through aiohttp, whose client has no HTTP/2"
        else:
            why = 'aiohttp\'s client has no HTTP/2: set engine = "fast"'
        what = f'"{m.model}"' + (f' (sub_model "{m.sub_model}")' if kind.wraps else "")
        raise ctx.fail(f"[[models]][{i}].model", f"{what} cannot speak HTTP/2 ({why}); "
                                                 f'http = "{http}" needs one of {able}')
    return streams


def parse_scenario(raw: dict[str, Any], source: str, base: Path | None = None) -> Scenario:
    """Validate a scenario's tables; `base` is the directory its relative paths (TLS
    files) are read from, None to read none (a run recovered from meta.json)."""
    ctx = Ctx(source)
    raw = interpolate(raw, source)
    ctx.keys(raw, ("run", "target", "load", "requests", "models", "thresholds", "data",
                   "flows", "capacity"), "scenario")
    run = ctx.table(raw.get("run", {}), "[run]")
    ctx.keys(run, ("name", "duration", "requests", "warmup", "seed", "workers", "timeout",
                   "max_body", "max_memory"), "[run]")
    load = ctx.table(raw.get("load", {}), "[load]")
    ctx.keys(load, ("mode", "concurrency", "rate", "stages", "think_time", "cookies",
                    "arrivals", "streams_per_connection"), "[load]")

    duration = ctx.duration(run["duration"], "[run].duration") if "duration" in run else None
    total = ctx.integer(run["requests"], "[run].requests", 1, MAX_REQUESTS) \
        if "requests" in run else None
    stages = []
    for i, _, st in ctx.entries(load.get("stages", []), "[load].stages",
                                ("duration", "target")):
        stages.append(Stage(ctx.duration(st.get("duration"), f"[load].stages[{i}].duration"),
                            ctx.number(st.get("target"), f"[load].stages[{i}].target",
                                       positive=False)))
    if duration is None and total is None and not stages and "capacity" not in raw:
        raise ctx.fail("[run]", 'expected duration = "10s" or requests = N (or [load].stages)')

    mode = load.get("mode", "open" if "rate" in load else "closed")
    if mode not in ("closed", "open"):
        raise ctx.fail("[load].mode", f'expected "closed" or "open", got {show(mode)}')
    rate = ctx.number(load["rate"], "[load].rate") if "rate" in load else None
    if mode == "open" and rate is None and not stages:
        raise ctx.fail("[load].rate", "expected a positive number for the open model")
    arrivals = load.get("arrivals", "constant")
    if arrivals not in ARRIVALS:
        raise ctx.fail("[load].arrivals", f'expected one of {", ".join(map(repr, ARRIVALS))}, '
                                          f"got {show(arrivals)}")
    searched = raw.get("capacity")
    rate_search = isinstance(searched, dict) and searched.get("over", "rate") == "rate"
    if arrivals != "constant" and mode != "open" and not rate_search:
        raise ctx.fail("[load].arrivals", "applies to the open model (set [load].rate): a "
                                          "closed model's users send when answered")
    default_conc = 100 if mode == "open" else 10
    concurrency = ctx.integer(load.get("concurrency", default_conc), "[load].concurrency")
    if stages and mode == "closed":
        concurrency = max(concurrency if "concurrency" in load else 1,
                          math.ceil(max(s.target for s in stages)) or 1)
    target = parse_target(ctx, ctx.table(raw.get("target", {}), "[target]"), base)
    models = _models(ctx, raw.get("models"))
    for i, m in enumerate(models):
        if not MODELS[m.model].open_model and mode == "open":
            raise ctx.fail(f"[[models]][{i}].model", f'"{m.model}" runs the closed model only '
                                                     '(it has no open, rate-based mode)')
        if not MODELS[m.model].server_name and target.tls.server_name:
            raise ctx.fail(f"[[models]][{i}].model",
                           f'"{m.model}" cannot set [target.tls].server_name (its '
                           "client names the URL's host): use a URL with the host name")
        if target.handshake not in MODELS[m.model].handshakes:
            able = [name for name, kind in MODELS.items() if target.handshake in kind.handshakes]
            raise ctx.fail(f"[[models]][{i}].model",
                           f'"{m.model}" makes {", ".join(MODELS[m.model].handshakes)} '
                           f'handshakes only: handshake = "{target.handshake}" needs one of '
                           f'{", ".join(able)}')
    streams = _http2(ctx, target.http, load, models)
    requests = parse_requests(ctx, raw.get("requests"), flows="flows" in raw)
    data = parse_data(ctx, raw.get("data"), base)
    names = {r.name for r in requests}
    flows = parse_flows(ctx, raw.get("flows"), data, names, recovered=base is None)
    if not requests and not flows:
        raise ctx.fail("[[requests]]", "expected at least one request or flow")
    cookies = load.get("cookies", True)
    if not isinstance(cookies, bool):
        raise ctx.fail("[load].cookies", f"expected true or false, got {show(cookies)}")
    thresholds_raw = dict(ctx.table(raw.get("thresholds", {}), "[thresholds]"))
    abort_raw = thresholds_raw.pop("abort_after", None)
    thresholds = parse_thresholds(ctx, thresholds_raw, names | {f.label for f in flows})
    abort_after = None
    if abort_raw is not None:
        abort_after = ctx.duration(abort_raw, "[thresholds].abort_after", maximum=3600)
        if not thresholds:
            raise ctx.fail("[thresholds].abort_after", "expected at least one threshold to "
                                                       "stop on")
    workers = ctx.integer(run.get("workers", 1), "[run].workers")
    if workers > 64:
        raise ctx.fail("[run].workers", f"expected at most 64 local workers, got {workers}")
    return Scenario(
        source=source,
        name=ctx.string(run.get("name", _default_name(source)), "[run].name", RUN_NAME,
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
        thresholds=thresholds,
        abort_after_s=abort_after,
        arrivals=arrivals,
        capacity=parse_capacity(ctx, raw["capacity"], models, bool(stages))
        if "capacity" in raw else None,
        raw=raw,
        tls=target.tls,
        handshake=target.handshake,
        http=target.http,
        streams=streams,
        mock_tls=target.mock_tls,
        data=data,
        flows=flows,
        cookies=cookies,
        max_body=ctx.size(run.get("max_body", DEFAULT_MAX_BODY), "[run].max_body", 1,
                          MAX_MAX_BODY),
        max_memory=ctx.size(run["max_memory"], "[run].max_memory", 64 << 20, 1 << 40)
        if "max_memory" in run else 0,
        notes=tuple(ctx.notes),
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
