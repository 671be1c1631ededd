"""Run one server process: bind, serve, sweep idle connections, stop gracefully.

The supervisor in cli.py runs one of these per `--processes`, each with its own
SO_REUSEPORT socket on the same port so the kernel spreads connections across them.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass

from mockserver.app import App
from mockserver.cluster import Cluster
from mockserver.config import MockConfig
from mockserver.fdlimit import raise_nofile
from mockserver.protocol import HttpProtocol
from mockserver.state import ServerState
from mockserver.tls import TlsOptions, server_context


@dataclass(frozen=True)
class ServerOptions:
    host: str
    port: int
    config: MockConfig
    seed: int | None = None
    admin_token: str | None = None
    admin_open: bool = True
    reuse_port: bool = False
    grace_s: float = 5.0
    loop: str = "uvloop"
    backlog: int = 4096
    tls: TlsOptions | None = None     # serve HTTPS with this certificate
    http2: bool = True                # HTTP/2 beside HTTP/1.1: ALPN h2, h2c's preface


def make_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    """A bound TCP socket; with reuse_port several processes may bind the same port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def new_loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        try:
            import uvloop
            return uvloop.new_event_loop
        except ImportError:  # the plain loop works everywhere, only slower
            pass
    return asyncio.new_event_loop


async def serve(opts: ServerOptions, *, index: int = 0, count: int = 1,
                sock_dir: str | None = None,
                on_ready: Callable[[int], None] | None = None) -> None:
    """Serve until SIGTERM/SIGINT, then finish in-flight requests within grace_s."""
    loop = asyncio.get_running_loop()
    state = ServerState(opts.config, seed=opts.seed, index=index)
    cluster = Cluster(state, sock_dir, index, count)
    app = App(state, cluster, admin_token=opts.admin_token, admin_open=opts.admin_open)
    await cluster.start()
    sock = make_socket(opts.host, opts.port, opts.reuse_port)
    sock.listen(opts.backlog)
    state.http2 = opts.http2
    ssl_context = server_context(opts.tls, opts.http2) if opts.tls is not None else None
    server = await loop.create_server(lambda: HttpProtocol(state, app.handle), sock=sock,
                                      ssl=ssl_context)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sweeper = loop.create_task(_sweep_idle(state))
    if on_ready is not None:
        on_ready(sock.getsockname()[1])
    await stop.wait()

    server.close()  # stop accepting; established connections stay
    for conn in list(state.connections):
        conn.shutdown()
    deadline = loop.time() + opts.grace_s
    while state.connections and loop.time() < deadline:
        await asyncio.sleep(0.02)
    for conn in list(state.connections):
        if conn.transport is not None:
            conn.transport.abort()
    sweeper.cancel()
    await cluster.close()


async def _sweep_idle(state: ServerState) -> None:
    """One timer for all connections, not one each: close kept-alive connections idle past
    limits.idle_timeout_s, and answer 408 and close those stuck in a partial request past
    limits.request_timeout_s (a slowloris trickling bytes stays active, never idle)."""
    loop = asyncio.get_running_loop()
    while True:
        limits = state.config.limits
        await asyncio.sleep(min(1.0, limits.idle_timeout_s / 4, limits.request_timeout_s / 4))
        now = loop.time()
        for conn in list(state.connections):
            if conn.mid_request:
                seen = conn.stuck_at
                if seen is None or seen[0] != conn.messages:
                    conn.stuck_at = (conn.messages, now)
                elif now - seen[1] > limits.request_timeout_s and conn.transport is not None:
                    conn.request_timed_out()
                    continue
            else:
                conn.stuck_at = None
            if conn.active:  # data_received only sets a flag; the clock is read here
                conn.active = False
                conn.last_active = now
            elif conn.idle and now - conn.last_active > limits.idle_timeout_s \
                    and conn.transport is not None:
                conn.transport.close()


def run_process(opts: ServerOptions, index: int = 0, count: int = 1,
                sock_dir: str | None = None,
                on_ready: Callable[[int], None] | None = None) -> None:
    raise_nofile()
    with asyncio.Runner(loop_factory=new_loop_factory(opts.loop)) as runner:
        runner.run(serve(opts, index=index, count=count, sock_dir=sock_dir, on_ready=on_ready))
