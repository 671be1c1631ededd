"""`harness` commands, thin: parse, call, map errors to exit codes (see DESIGN.md).

0 ok · 1 run failed · 2 bad usage or invalid scenario (nothing was sent) ·
3 run finished but partial · 99 thresholds crossed.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from harness.scenario import ScenarioError, load_scenario

EXIT_FAILED, EXIT_USAGE = 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too; keep its message short
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="harness", description="distributed HTTP load-test harness")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def scenario_args(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument("scenario")
        cmd.add_argument("--out", default="results", help="results directory")
        cmd.add_argument("--target", help="target base URL (else the scenario's or embedded)")
        cmd.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="override a scenario value, e.g. load.rate=500")
        cmd.add_argument("--quiet", action="store_true")

    run = sub.add_parser("run", help="run a scenario with local workers")
    scenario_args(run)
    run.add_argument("--workers", type=int, help="local worker processes")

    coord = sub.add_parser("coordinator", help="run a scenario with remote workers")
    scenario_args(coord)
    coord.add_argument("--bind", default="tcp://127.0.0.1:5555")
    coord.add_argument("--expect-workers", type=int, required=True)
    coord.add_argument("--wait-workers", type=float, default=60.0, metavar="SECONDS",
                       help="how long to wait for the workers to join")
    coord.add_argument("--curve-dir", help="CURVE keys (harness keys DIR): encrypt and "
                                           "authenticate workers")
    coord.add_argument("--insecure", action="store_true",
                       help="allow a non-loopback bind without CURVE")

    worker = sub.add_parser("worker", help="join a coordinator")
    worker.add_argument("--connect", required=True)
    worker.add_argument("--name")
    worker.add_argument("--curve-dir", help="CURVE keys: worker.key_secret, coordinator.key")
    worker.add_argument("--connect-timeout", type=float, default=30.0, metavar="SECONDS")

    rep = sub.add_parser("report", help="build report.html for a run directory")
    rep.add_argument("run_dir")

    cmp_ = sub.add_parser("compare", help="compare runs: deltas with significance")
    cmp_.add_argument("inputs", nargs="+", metavar="RUN",
                      help="run directories, summary.csv files or Locust *_stats.csv files; "
                           "the first is the baseline")
    cmp_.add_argument("--format", choices=("table", "markdown", "csv", "json"),
                      default="table")
    cmp_.add_argument("--fail-on", default="", metavar="GATES",
                      help='e.g. "p99:+10%%,rps:-5%%,errors:+0.5pp": exit 99 when crossed')

    keys = sub.add_parser("keys", help="make CURVE key pairs for coordinator and workers")
    keys.add_argument("dir")

    val = sub.add_parser("validate", help="check a scenario without running it")
    val.add_argument("scenario")
    val.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "keys":
        from harness.security import make_keys
        try:
            paths = make_keys(args.dir)
        except OSError as exc:
            print(f"harness: error: keys {args.dir}: cannot write: {exc.strerror or exc}",
                  file=sys.stderr)
            return EXIT_USAGE
        for path in paths:
            print(path)
        return 0
    if args.command == "worker":
        if problem := endpoint_problem(args.connect, bind=False):
            print(f"harness: error: --connect {args.connect}: {problem}", file=sys.stderr)
            return EXIT_USAGE
        return _worker(args)
    if args.command == "report":
        from harness.report import ReportError, build_report
        try:
            print(build_report(args.run_dir))
        except ReportError as exc:
            print(f"harness: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        return 0
    if args.command == "compare":
        from harness.compare import run_compare
        return run_compare(args.inputs, args.format, args.fail_on)
    try:
        scenario = load_scenario(args.scenario, args.set)
    except ScenarioError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "validate":
        print(f"{args.scenario}: ok ({len(scenario.models)} models, "
              f"{len(scenario.requests)} requests)")
        return 0
    if args.target and not args.target.startswith("http://"):
        print(f"harness: error: --target: expected an http:// URL, got {args.target!r}",
              file=sys.stderr)
        return EXIT_USAGE
    if problem := out_dir_problem(Path(args.out)):
        print(f"harness: error: --out {args.out}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    workers = getattr(args, "workers", None)
    if workers is not None and workers < 1:
        print(f"harness: error: --workers: expected >= 1, got {workers}", file=sys.stderr)
        return EXIT_USAGE

    from harness.coordinator import CoordinatorError
    from harness.embedded import MockError
    from harness.run import execute
    try:
        if args.command == "run":
            report = execute(scenario, Path(args.out), target=args.target, workers=workers,
                             quiet=args.quiet)
        else:
            kwargs = _coordinator_security(args)
            if kwargs is None:
                return EXIT_USAGE
            report = execute(scenario, Path(args.out), target=args.target,
                             workers=args.expect_workers, bind=args.bind,
                             local_workers=False, quiet=args.quiet,
                             coordinator_kwargs=kwargs, wait_workers=args.wait_workers)
    except (CoordinatorError, MockError) as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if not args.quiet:
        for line in report.lines:
            print(line)
    print(report.run_dir)
    return report.exit_code


def _is_loopback_endpoint(endpoint: str) -> bool:
    from mockserver.cli import is_loopback

    m = _TCP.match(endpoint)  # endpoint_problem has passed it: tcp:// or ipc://
    return m is None or is_loopback(m.group(1).strip("[]"))


def out_dir_problem(out: Path) -> str | None:
    """Made (and checked writable) before the run starts: a run whose results cannot be
    written must not send its load first."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create it: {exc.strerror or exc}"
    if not out.is_dir() or not os.access(out, os.W_OK | os.X_OK):
        return "not a writable directory"
    return None


_TCP = re.compile(r"^tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.*-]+):(\d{1,5})$")


def endpoint_problem(endpoint: str, *, bind: bool) -> str | None:
    """What is wrong with a ZeroMQ endpoint, in words (None when it is fine): caught here so
    a typo is a usage error, not a ZMQError traceback from deep inside the socket."""
    if endpoint.startswith("ipc://") and len(endpoint) > len("ipc://"):
        return None
    m = _TCP.match(endpoint)
    example = "tcp://0.0.0.0:5555" if bind else "tcp://HOST:5555"
    if m is None:
        return f"expected tcp://HOST:PORT (e.g. {example}) or ipc://PATH"
    if not 1 <= int(m.group(2)) <= 65535:
        return f"expected a port 1..65535, got {m.group(2)}"
    if "*" in m.group(1) and (not bind or m.group(1) != "*"):
        return "'*' is only for binding, as the whole host"
    return None


def _coordinator_security(args: argparse.Namespace) -> dict | None:
    """CURVE when asked; without it, only a loopback bind unless --insecure."""
    if args.expect_workers < 1:
        print("harness: error: --expect-workers: expected >= 1", file=sys.stderr)
        return None
    if problem := endpoint_problem(args.bind, bind=True):
        print(f"harness: error: --bind {args.bind}: {problem}", file=sys.stderr)
        return None
    if args.curve_dir:
        from harness.security import KeyError_, coordinator_security
        try:
            secret, auth = coordinator_security(args.curve_dir)
        except KeyError_ as exc:
            print(f"harness: error: --curve-dir: {exc}", file=sys.stderr)
            return None
        return {"curve_secret": secret, "authenticator": auth}
    if not _is_loopback_endpoint(args.bind) and not args.insecure:
        print(f"harness: error: --bind {args.bind} is not loopback: give --curve-dir "
              "(harness keys DIR) or --insecure", file=sys.stderr)
        return None
    return {}


def _worker(args: argparse.Namespace) -> int:
    from harness.worker import run_worker
    curve = None
    if args.curve_dir:
        from harness.security import KeyError_, worker_keys
        try:
            curve = worker_keys(args.curve_dir)
        except KeyError_ as exc:
            print(f"harness: error: --curve-dir: {exc}", file=sys.stderr)
            return EXIT_USAGE
    return run_worker(args.connect, args.name, curve, args.connect_timeout)
