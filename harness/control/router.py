"""The coordinator's socket and its security: one ROUTER, bound (a random port for `:0`),
CURVE when keys are given, frames capped (a hostile peer is cut off by ZeroMQ), and a
monitor that counts handshakes refused before any message (no keys, a wrong key).

Knows frames and identities, nothing of workers or models: the coordinator decodes.
"""

from __future__ import annotations

from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from harness.control import messages
from harness.errors import CoordinatorError


class Router:
    def __init__(self, bind: str, curve_secret: bytes | None = None,
                 authenticator: Any = None) -> None:
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 1000)
        self.sock.setsockopt(zmq.MAXMSGSIZE, messages.MAX_FRAME)  # a hostile peer: cut off
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 0)
        if curve_secret is not None:
            self.sock.curve_server = True
            self.sock.curve_secretkey = curve_secret
        self.authenticator = authenticator
        try:
            if bind.endswith(":0"):
                port = self.sock.bind_to_random_port(bind.rsplit(":", 1)[0])
                self.endpoint = f"{bind.rsplit(':', 1)[0]}:{port}"
            else:
                self.sock.bind(bind)
                self.endpoint = bind
        except zmq.ZMQError as exc:
            self.sock.close()
            raise CoordinatorError(f"cannot bind {bind}: {exc}") from None
        self.monitor = self.sock.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq.EVENT_HANDSHAKE_FAILED_AUTH)

    def send(self, identity: bytes, kind: str, **fields: Any) -> None:
        try:
            self.sock.send_multipart([identity, messages.encode(kind, **fields)],
                                     flags=zmq.NOBLOCK)
        except zmq.Again:
            pass  # a worker that cannot take messages is caught by the heartbeat check

    def receive(self, timeout_s: float) -> list[bytes] | None:
        """The frames of one message arriving within timeout_s, or None."""
        if self.sock.poll(int(timeout_s * 1000)):
            return self.sock.recv_multipart()
        return None

    def refused_handshakes(self) -> int:
        """Handshakes refused since the last call (read off the monitor, never waiting)."""
        n = 0
        while self.monitor.poll(0):
            try:
                recv_monitor_message(self.monitor)
            except zmq.ZMQError:
                break
            n += 1
        return n

    def close(self) -> None:
        self.sock.disable_monitor()
        self.monitor.close(0)
        self.sock.close(linger=500)
        if self.authenticator is not None:
            self.authenticator.stop()
