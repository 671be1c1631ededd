"""Sibling processes of one `--processes N` server, so the admin API covers all of them.

Each process listens on a unix socket in a shared directory. Whichever process receives an
admin request asks every sibling (one JSON line in, one out) and merges the answers: stats
are summed exactly, config and reset are applied everywhere. With one process no socket is
opened and calls stay local.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from mockserver.config import parse_config
from mockserver.state import ServerState

PEER_TIMEOUT_S = 2.0


class Cluster:
    def __init__(self, state: ServerState, sock_dir: str | None = None, index: int = 0,
                 count: int = 1) -> None:
        self.state = state
        self.dir = Path(sock_dir) if sock_dir else None
        self.index = index
        self.count = count
        self._server: asyncio.AbstractServer | None = None

    def _path(self, i: int) -> str:
        assert self.dir is not None
        return str(self.dir / f"peer-{i}.sock")

    async def start(self) -> None:
        if self.count > 1:
            self._server = await asyncio.start_unix_server(self._serve, self._path(self.index))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()

    def apply(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Carry out one admin operation on this process only."""
        op = msg.get("op")
        if op == "stats":
            return {**self.state.stats.snapshot(), "queues": self.state.queues()}
        if op == "reset":
            self.state.stats.reset()
            return {"ok": True}
        if op == "config":
            self.state.set_config(parse_config(msg["config"]))
            return {"ok": True}
        if op == "goaway":   # every HTTP/2 connection of this process drains and closes
            drained = [c for c in list(self.state.connections)
                       if hasattr(c, "drain") and c.drain()]
            return {"ok": True, "connections": len(drained)}
        return {"error": f"unknown op {op!r}"}

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            reply = self.apply(json.loads(line))
        except Exception as exc:  # a sibling must never take this process down
            reply = {"error": str(exc)}
        writer.write(json.dumps(reply).encode() + b"\n")
        try:
            await writer.drain()
        finally:
            writer.close()

    async def _ask(self, i: int, msg: dict[str, Any]) -> dict[str, Any] | None:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(self._path(i)), PEER_TIMEOUT_S)
            writer.write(json.dumps(msg).encode() + b"\n")
            line = await asyncio.wait_for(reader.readline(), PEER_TIMEOUT_S)
            writer.close()
            return json.loads(line)
        except (OSError, TimeoutError, ValueError):
            return None  # a sibling that died or hangs is reported as missing

    async def call_all(self, msg: dict[str, Any]) -> list[dict[str, Any] | None]:
        """The operation on every process, this one included; None where a sibling is gone."""
        answers = await asyncio.gather(*(
            self._ask(i, msg) for i in range(self.count) if i != self.index))
        return [self.apply(msg), *answers]
