"""Slices of a run: each worker's Job, made from the scenario (the coordinator sends it in
PREPARE, the tables' bytes apart: control.datasend)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from harness.core.job import Job, share_fields, users_before
from harness.core.registry import MODELS
from harness.core.timing import MAX_COUNT_RUN_S
from harness.scenario import ModelSpec, Scenario


def data_entry(table: Any) -> dict[str, Any]:
    """A [[data]] table as the Job carries it: the file's bytes (`blob`, from `offset` on
    the rows), each load process indexes them itself (core.datatable). The coordinator
    takes the blob out of PREPARE and ships it apart, in chunks (control.datasend)."""
    rows = table.rows
    return {"name": table.name, "order": table.order, "columns": list(table.columns),
            "blob": getattr(rows, "body", b""), "offset": getattr(rows, "offset", 0)}


def make_job(scenario: Scenario, model: ModelSpec, url: str, index: int, workers: int,
             http: str | None = None) -> Job:
    """One worker's slice; `http` is the protocol "auto" resolved to (the coordinator
    asks transports.tls.negotiated_http once a run), else the scenario's own."""
    concurrency = 1 if MODELS[model.model].single_user else \
        (model.concurrency or scenario.concurrency)
    stages = [[s.duration_s, s.target] for s in scenario.stages]
    duration = scenario.run_seconds or MAX_COUNT_RUN_S
    if scenario.total_requests is not None and not scenario.duration_s and not stages:
        duration = MAX_COUNT_RUN_S
    return Job(
        model=model.model, engine=model.engine, processes=model.processes,
        sub_model=model.sub_model, cpu_work=model.cpu_work, url=url,
        requests=[{"name": r.name, "method": r.method, "path": r.path,
                   "headers": [list(h) for h in r.headers], "body": r.body,
                   "weight": r.weight, "expect_status": list(r.expect_status)}
                  for r in scenario.requests],
        mode=scenario.mode, arrivals=scenario.arrivals, duration_s=duration,
        warmup_s=scenario.warmup_s, timeout_s=scenario.timeout_s,
        think_time_s=scenario.think_time_s, seed=scenario.seed * 7919 + index,
        label=model.label, tls=asdict(scenario.tls), handshake=scenario.handshake,
        flows=[{"name": f.name, "weight": f.weight, "steps": [
            {"name": st.request.name, "method": st.request.method, "path": st.request.path,
             "headers": [list(h) for h in st.request.headers],
             "body": st.request.body.decode(), "expect_status": list(st.request.expect_status),
             "extract": [{"var": e.var, "kind": e.kind, "expr": e.expr} for e in st.extract],
             "think_time_s": st.think_time_s, "kind": st.kind} for st in f.steps]}
            for f in scenario.flows],
        data=[data_entry(t) for t in scenario.data],
        cookies=scenario.cookies, max_body=scenario.max_body,
        max_memory=scenario.max_memory, user_offset=users_before(concurrency, index, workers),
        stream_index=index, stream_count=workers,
        http=http or scenario.http, streams=scenario.streams,
        **share_fields(concurrency, scenario.rate, stages, scenario.total_requests, index,
                       workers, scenario.mode),
    )
