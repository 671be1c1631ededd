"""The sync model (one thread, one connection, one request at a time) and the thread model
(N threads, each with its own keep-alive connection)."""

from __future__ import annotations

from harness.clients.base import LocalModel
from harness.clients.blocking import BlockingClient
from harness.clients.flows import prepare
from harness.clients.loops import Journeys, blocking_user
from harness.clients.tls import user_contexts
from harness.clients.wire import base_headers


class ThreadModel(LocalModel):
    """N OS threads; the sync model is the same with N = 1 (the baseline)."""

    def launch(self) -> None:
        assert self.pacer is not None and self.recorder is not None
        job = self.job
        contexts = user_contexts(job, job.concurrency)
        note = self.handshake_note()
        host, port = job.host_port
        flows, flow_user = prepare(job, base_headers(host, port, job.default_port))
        for user in range(job.concurrency):
            client = BlockingClient(job, contexts[user], note)
            journeys = Journeys(flows, flow_user(user), client.exchange) if flows else None
            self.spawn(blocking_user, user, job, self.pacer, self.recorder, client.send,
                       client.close, journeys)


class SyncModel(ThreadModel):
    """One thread, one keep-alive connection: requests strictly one after another."""
