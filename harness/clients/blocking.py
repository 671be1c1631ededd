"""A blocking keep-alive HTTP/1.1 client (stdlib http.client) for the sync and thread models:
what plain synchronous Python code uses, with its errors sorted into our kinds."""

from __future__ import annotations

import http.client
import socket

from harness.clients.base import (
    BODY_LENGTH,
    CONNECT_REFUSED,
    MALFORMED,
    OTHER,
    RESET,
    TIMEOUT,
    RequestFailed,
)
from harness.plan import Job


class BlockingClient:
    def __init__(self, job: Job) -> None:
        self.host, self.port = job.host_port
        self.timeout = job.timeout_s
        self.base = job.base_path
        self.specs = job.specs
        self.conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self.conn

    def send(self, k: int) -> tuple[int, int]:
        spec = self.specs[k]
        conn = self._connection()
        try:
            conn.request(spec.method, self.base + spec.path, body=spec.body or None,
                         headers=dict(spec.headers))
            resp = conn.getresponse()
            body = resp.read()
            if resp.will_close:
                self.close()
            return resp.status, len(body)
        except Exception as exc:
            self.close()
            raise RequestFailed(classify(exc), str(exc)) from None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def classify(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return CONNECT_REFUSED
    if isinstance(exc, TimeoutError | socket.timeout):
        return TIMEOUT
    if isinstance(exc, http.client.IncompleteRead):
        return BODY_LENGTH
    if isinstance(exc, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError):
        return RESET
    if isinstance(exc, http.client.HTTPException):
        return MALFORMED
    return OTHER
