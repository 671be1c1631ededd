"""Locust as one more model: `locust` (FastHttpUser) and `locust-http` (HttpUser).

Locust runs as a library inside a load process of its own (it monkey-patches the process
for gevent, so it never shares one with the other models), headless, with the scenario's
request mix, users and duration. Every request Locust reports through its `request`
event -- with the response time Locust itself measured -- is recorded into our recorder,
so reports, verdict and compare treat Locust exactly like our models. Closed model only:
Locust has no open (rate) model to map onto.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from harness.clients.base import LocalModel
from harness.clients.flows import prepare
from harness.clients.loops import FlowRun, cpu_work, run_flow
from harness.clients.pacing import Picker
from harness.core.extraction import Answer
from harness.core.failures import (
    EXTRACT_FAILED,
    OTHER,
    STATUS,
    RequestFailed,
    classify_locust,
)
from harness.transports.wire import base_headers, headers_for


class LocustModel(LocalModel):
    def totals(self) -> dict[str, Any]:
        """Locust's clients make their TLS connections out of our sight: no handshake
        counts (meta.json says `measured: false`), never zeros that read as none."""
        totals = super().totals()
        totals.pop("tls", None)
        return totals

    def launch(self) -> None:  # pragma: no cover - Locust only runs in the foreground
        raise RuntimeError("the Locust model runs in its load process's foreground")

    def run_foreground(self, tick: Callable[[], None], every: float) -> None:
        import gevent
        from locust import FastHttpUser, HttpUser, constant, task
        from locust.env import Environment
        from locust.exception import StopUser

        job, pacer, rec = self.job, self.pacer, self.recorder
        assert pacer is not None and rec is not None
        specs = job.specs
        names = {name: i for i, name in enumerate(job.result_names)}
        base_path = job.base_path
        picker = Picker(job.weights, job.seed)
        host, port = job.host_port
        headers = [dict(headers_for(s, host, port, job.default_port))  # as far as Locust
                   for s in specs]                                       # allows
        perf_ns = time.perf_counter_ns
        # flows: Locust's own per-user cookie jar stands in for ours (its clients keep one
        # per user across requests); ours is off so no Cookie header is doubled
        flows, flow_user = prepare(replace(job, cookies=False),
                                   base_headers(host, port, job.default_port))
        users_made = [0]

        tls_files = LocustTls(job)
        fast = job.model == "locust"

        class Peer(FastHttpUser if fast else HttpUser):  # type: ignore[misc]
            host = job.url.removesuffix(base_path) if base_path else job.url
            wait_time = constant(job.think_time_s)
            network_timeout = job.timeout_s
            connection_timeout = job.timeout_s
            # TLS as far as Locust allows: verification, an extra CA, a client certificate;
            # always kept-alive (no per-request or resumed handshakes), no tls_ms
            insecure = not tls_files.verify_on
            ssl_context_factory = staticmethod(tls_files.gevent_context) if fast else None

            def on_start(self) -> None:
                if not fast:
                    self.client.verify = tls_files.verify
                    if tls_files.cert:
                        self.client.cert = (tls_files.cert, tls_files.key)
                self.journey = flow_user(users_made[0]) if flows else None
                users_made[0] += 1

            def cookies(self) -> dict[str, str]:
                jar = self.client.cookiejar if fast else self.client.cookies
                return {c.name: c.value for c in jar}

            def run_flow(self, flow: Any) -> None:
                """A flow iteration: the one flow driver (loops.run_flow) over Locust's
                client, each step sent under its own name (what a SequentialTaskSet would
                run); the step and the flow's rows are recorded by the driver."""
                run_flow(FlowRun(self.journey.start(flow), rec, rec.sent, 0, perf_ns()),
                         self.exchange, gevent.sleep)

            def exchange(self, out: Any, step: Any) -> Answer:
                """One rendered step through Locust's client: its Answer, or RequestFailed
                when no answer came."""
                with self.client.request(out.method, out.path, headers=dict(out.headers),
                                         data=out.body or None, name=step.name,
                                         catch_response=True,
                                         allow_redirects=False) as resp:
                    status = resp.status_code or 0
                    error = getattr(resp, "error", None)
                    answer = None
                    if status:
                        # the jar's cookies as Set-Cookie lines: `cookie` extraction finds
                        # what Locust's jar took from this answer
                        answer = Answer(status, resp.content or b"",
                                        [*resp.headers.items(),
                                         *(("Set-Cookie", f"{k}={v}")
                                           for k, v in self.cookies().items())])
                    resp.success()   # our recorder judges the step (the driver), not Locust
                if not job.cookies:
                    (self.client.cookiejar if fast else self.client.cookies).clear()
                if answer is None:
                    raise RequestFailed(classify_locust(error) if error is not None
                                        else OTHER, str(error or "no answer"))
                return answer

            @task
            def one(self) -> None:
                now = time.perf_counter()
                if not pacer.running(now) or not pacer.claim(now):
                    raise StopUser()
                k = picker.pick()
                if k >= len(specs):
                    self.run_flow(flows[k - len(specs)])
                    return
                rec.sent[0] += 1  # counted when sent: the server counts it then too
                spec = specs[k]
                # redirects are answers, as in our models: a followed hop would be a
                # request on the wire that requests_sent never counted, its row the last
                # hop's status
                kwargs: dict[str, Any] = {"headers": headers[k], "name": spec.name,
                                          "catch_response": True, "allow_redirects": False}
                if spec.body:
                    kwargs["data"] = spec.body
                if job.model == "locust-http":
                    kwargs["timeout"] = job.timeout_s
                with self.client.request(spec.method, base_path + spec.path,
                                         **kwargs) as resp:
                    status = resp.status_code or 0
                    if status in spec.accepted_statuses:
                        resp.success()
                    elif status:
                        resp.failure(f"{STATUS}: {status}")
                if job.cpu_work:
                    cpu_work(job.cpu_work)

        def on_request(name: str, response_time: float, exception: BaseException | None,
                       response_length: int = 0, response: Any = None, **_: Any) -> None:
            k = names.get(name)
            if k is None or k >= len(specs):
                return   # a flow step: its FlowRun recorded it (with its extraction)
            done = perf_ns()
            latency = int(response_time * 1e6)  # Locust measures in ms (float)
            status = int(getattr(response, "status_code", 0) or 0)
            if exception is None:
                rec.ok(k, done, latency, response_length or 0, status)
            else:
                kind = classify_locust(exception)
                rec.fail(k, done, latency, kind,
                         status if kind in (STATUS, EXTRACT_FAILED) else 0)

        # stop_timeout: at the end users finish the request in flight instead of being
        # killed mid-request, so what we count as sent is what the target received.
        env = Environment(user_classes=[Peer], stop_timeout=job.timeout_s)
        env.events.request.add_listener(on_request)
        runner = env.create_local_runner()
        try:
            delay = pacer.t0 - time.perf_counter()
            if delay > 0:
                gevent.sleep(delay)
            users = max(1, math.ceil(pacer.target(time.perf_counter())))
            runner.start(users, spawn_rate=users)
            while pacer.running(time.perf_counter()):
                gevent.sleep(every)
                tick()
                if job.stages:
                    wanted = max(1, math.ceil(pacer.target(time.perf_counter())))
                    if wanted != runner.user_count:
                        runner.start(wanted, spawn_rate=max(wanted, 1))
                if job.total_requests is not None and runner.user_count == 0:
                    break
        except Exception as exc:  # reported by the worker as a failed run
            self.error = exc
        finally:
            runner.quit()
            gevent.sleep(0.1)
            tls_files.remove()


class LocustTls:
    """Locust's clients take TLS material as files (requests) or a context factory
    (geventhttpclient): the Job's PEM text written 0600 to a private directory for the
    length of the run."""

    def __init__(self, job: Any) -> None:
        import os
        import tempfile

        from harness.transports.tls import write_private  # after gevent's patches (ssl)
        tls = job.tls if job.secure else {}
        self.dir = tempfile.mkdtemp(prefix="loadharness-locust-tls-")
        self.verify_on = bool(tls.get("verify", True))
        self.ca = self.cert = self.key = None
        for attr, key in (("ca", "ca_pem"), ("cert", "cert_pem"), ("key", "key_pem")):
            if tls.get(key):
                path = os.path.join(self.dir, f"{attr}.pem")
                write_private(path, tls[key])
                setattr(self, attr, path)

    @property
    def verify(self) -> bool | str:
        """requests' `verify`: False, True (system CAs) or a CA bundle file."""
        return (self.ca or True) if self.verify_on else False

    def gevent_context(self) -> Any:
        import gevent.ssl
        ctx = gevent.ssl.create_default_context(cafile=self.ca) if self.verify_on \
            else gevent.ssl._create_unverified_context()  # noqa: SLF001 - curl -k
        if self.cert:
            ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def remove(self) -> None:
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)
