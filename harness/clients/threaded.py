"""The sync model (one thread, one connection, one request at a time) and the thread model
(N threads, each with its own keep-alive connection), over a blocking transport (stdlib)."""

from __future__ import annotations

from harness.clients.base import LocalModel
from harness.clients.flows import prepare
from harness.clients.loops import Journeys, blocking_user
from harness.transports.base import transport_for
from harness.transports.wire import base_headers


class ThreadModel(LocalModel):
    """N OS threads; the sync model is the same with N = 1 (the baseline)."""

    def launch(self) -> None:
        assert self.pacer is not None and self.recorder is not None
        job = self.job
        host, port = job.host_port
        flows, flow_user = prepare(job, base_headers(host, port, job.default_port))
        transport = transport_for(job)(job, self.handshake_note())
        for user in range(job.concurrency):
            link = transport.user(user)
            journeys = Journeys(flows, flow_user(user), link.exchange, transport.takes) \
                if flows else None
            self.spawn(blocking_user, user, job, self.pacer, self.recorder, link.send,
                       link.close, journeys)


class SyncModel(ThreadModel):
    """One thread, one keep-alive connection: requests strictly one after another."""
