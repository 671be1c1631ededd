"""A blocking keep-alive HTTP/1.1 client (stdlib http.client) for the sync and thread models:
what plain synchronous Python code uses, with its errors sorted into our kinds."""

from __future__ import annotations

import http.client

from harness.clients.failures import RequestFailed, classify_stdlib
from harness.clients.wire import headers_for
from harness.control.job import Job


class BlockingClient:
    def __init__(self, job: Job) -> None:
        self.host, self.port = job.host_port
        self.timeout = job.timeout_s
        self.base = job.base_path
        self.specs = job.specs
        # the documented header set (wire.py); http.client adds no Host or
        # Accept-Encoding of its own when they are given
        self.headers = [dict(headers_for(s, self.host, self.port)) for s in self.specs]
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
                         headers=self.headers[k])
            resp = conn.getresponse()
            body = resp.read()
            if resp.will_close:
                self.close()
            return resp.status, len(body)
        except Exception as exc:
            self.close()
            raise RequestFailed(classify_stdlib(exc), str(exc)) from None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
