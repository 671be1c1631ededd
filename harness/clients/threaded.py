"""The sync model (one thread, one connection, one request at a time) and the thread model
(N threads, each with its own keep-alive connection)."""

from __future__ import annotations

from harness.clients.base import LocalModel
from harness.clients.blocking import BlockingClient
from harness.clients.loops import blocking_user
from harness.clients.tls import user_contexts


class ThreadModel(LocalModel):
    """N OS threads; the sync model is the same with N = 1 (the baseline)."""

    def launch(self) -> None:
        assert self.pacer is not None and self.recorder is not None
        contexts = user_contexts(self.job, self.job.concurrency)
        note = self.handshake_note()
        for user in range(self.job.concurrency):
            client = BlockingClient(self.job, contexts[user], note)
            self.spawn(blocking_user, user, self.job, self.pacer, self.recorder, client.send,
                       client.close)


class SyncModel(ThreadModel):
    """One thread, one keep-alive connection: requests strictly one after another."""
