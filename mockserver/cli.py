"""`mockserver` command: parse options, check them, run one process or a supervised group.

Exit codes: 0 stopped cleanly · 1 could not serve (port taken, a process died) ·
2 bad usage or config (nothing was started).
"""

from __future__ import annotations

import argparse
import atexit
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from mockserver.addresses import is_loopback
from mockserver.config import MockConfig, load_config_file
from mockserver.errors import ConfigError
from mockserver.server import ServerOptions, make_socket, run_process
from mockserver.tls import TlsOptions, fingerprint, self_signed, server_context


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mockserver",
                                description="HTTP/1.1 mock target with tunable latency and faults")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    p.add_argument("--processes", type=int, default=1, help="processes sharing the port")
    p.add_argument("--config", help="routes file, TOML or JSON")
    p.add_argument("--seed", type=int, help="seed for latency and fault draws")
    p.add_argument("--admin-token", default=os.environ.get("MOCKSERVER_ADMIN_TOKEN"),
                   help="bearer token for /_mock/ (required off loopback)")
    p.add_argument("--insecure-admin", action="store_true",
                   help="allow an open admin API on a non-loopback address")
    p.add_argument("--grace", type=float, default=5.0,
                   help="seconds to finish in-flight requests on SIGTERM")
    p.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    p.add_argument("--no-http2", action="store_true",
                   help="serve HTTP/1.1 only: no h2 in TLS's ALPN, no h2c by prior knowledge")
    tls = p.add_argument_group("HTTPS")
    tls.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (chain)")
    tls.add_argument("--tls-key", help="the certificate's PEM private key")
    tls.add_argument("--tls-self-signed", action="store_true",
                     help="make a self-signed certificate at start; its path and SHA-256 "
                          "fingerprint are printed after the listening line")
    tls.add_argument("--tls-client-ca", help="require client certificates signed by this CA "
                                             "(mutual TLS)")
    return p


def options_from_args(argv: list[str] | None = None) -> tuple[ServerOptions, int]:
    """Parse and validate everything before binding anything; raises SystemExit(2) on error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port: expected 0..65535, got {args.port}")
    if not 1 <= args.processes <= 256:
        parser.error(f"--processes: expected 1..256, got {args.processes}")
    loopback = is_loopback(args.host)
    if not loopback and not args.admin_token and not args.insecure_admin:
        parser.error(f"--host {args.host} is not loopback: give --admin-token "
                     "(or --insecure-admin to leave /_mock/ open)")
    config = MockConfig()
    if args.config:
        try:
            config = load_config_file(args.config)
        except ConfigError as exc:
            print(f"mockserver: error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    opts = ServerOptions(host=args.host, port=args.port, config=config, seed=args.seed,
                         admin_token=args.admin_token or None,
                         admin_open=loopback or args.insecure_admin,
                         reuse_port=args.processes > 1, grace_s=args.grace, loop=args.loop,
                         tls=_tls_options(parser, args), http2=not args.no_http2)
    return opts, args.processes


def _tls_options(parser: argparse.ArgumentParser, args: argparse.Namespace
                 ) -> TlsOptions | None:
    """The HTTPS options, checked (files read, certificate and key matched) before anything
    binds; a self-signed certificate is made here."""
    if args.tls_self_signed and (args.tls_cert or args.tls_key):
        parser.error("--tls-self-signed: give it or --tls-cert/--tls-key, not both")
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key: give both (a certificate and its key)")
    if args.tls_client_ca and not (args.tls_cert or args.tls_self_signed):
        parser.error("--tls-client-ca: needs --tls-cert/--tls-key or --tls-self-signed")
    if args.tls_self_signed:
        directory = Path(tempfile.mkdtemp(prefix="mockserver-tls-"))
        atexit.register(shutil.rmtree, directory, True)
        cert, key = self_signed(directory, args.host)
        opts = TlsOptions(str(cert), str(key), args.tls_client_ca)
    elif args.tls_cert:
        opts = TlsOptions(args.tls_cert, args.tls_key, args.tls_client_ca)
    else:
        return None
    try:
        server_context(opts)
    except ConfigError as exc:
        print(f"mockserver: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return opts


def _announce(host: str, port: int, tls: TlsOptions | None = None) -> None:
    """The line a supervisor waits for; with HTTPS, a second line with the certificate's
    path and SHA-256 fingerprint (what a client pins)."""
    shown = f"[{host}]" if ":" in host else host
    scheme = "https" if tls is not None else "http"
    print(f"listening on {scheme}://{shown}:{port}", flush=True)
    if tls is not None:
        pem = Path(tls.cert).read_bytes()
        print(f"tls certificate {tls.cert} sha256 {fingerprint(pem)}", flush=True)


def _child(opts: ServerOptions, index: int, count: int, sock_dir: str, conn: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when to stop
    try:
        run_process(opts, index, count, sock_dir, on_ready=lambda port: conn.send(("ready", port)))
    except OSError as exc:
        conn.send(("error", str(exc)))
        raise SystemExit(1) from None


def _supervise(opts: ServerOptions, count: int) -> int:
    """N processes on one port: reserve the port, start children, wait for all to listen."""
    reserve = make_socket(opts.host, opts.port, reuse_port=True)
    port = reserve.getsockname()[1]
    opts = ServerOptions(**{**opts.__dict__, "port": port})
    sock_dir = tempfile.mkdtemp(prefix="mockserver-")
    ctx = multiprocessing.get_context("fork")
    children = []
    try:
        for i in range(count):
            parent_end, child_end = ctx.Pipe()
            proc = ctx.Process(target=_child, args=(opts, i, count, sock_dir, child_end),
                               daemon=False)
            proc.start()
            children.append((proc, parent_end))
        for _, end in children:
            if not end.poll(30) or end.recv()[0] != "ready":
                print("mockserver: error: a server process failed to start", file=sys.stderr)
                return 1
        reserve.close()
        _announce(opts.host, port, opts.tls)
        stopping = False

        def stop(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True
            for proc, _ in children:
                if proc.is_alive():
                    os.kill(proc.pid, signal.SIGTERM)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        while not stopping and all(p.is_alive() for p, _ in children):
            children[0][0].join(0.2)
        if not stopping:
            print("mockserver: error: a server process died; stopping", file=sys.stderr)
            stop(signal.SIGTERM, None)
            for proc, _ in children:
                proc.join(opts.grace_s + 5)
            return 1
        for proc, _ in children:
            proc.join(opts.grace_s + 5)
        return 0
    finally:
        for proc, _ in children:
            if proc.is_alive():
                proc.kill()
        shutil.rmtree(sock_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    opts, processes = options_from_args(argv)
    try:
        if processes > 1:
            return _supervise(opts, processes)
        run_process(opts, on_ready=lambda port: _announce(opts.host, port, opts.tls))
    except OSError as exc:
        print(f"mockserver: error: cannot listen on {opts.host}:{opts.port}: {exc.strerror}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
