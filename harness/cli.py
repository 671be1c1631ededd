"""`harness` commands, thin: parse, call, map errors to exit codes (see DESIGN.md).

0 ok · 1 run failed · 2 bad usage or invalid scenario (nothing was sent) ·
3 run finished but partial · 99 thresholds crossed.
"""

from __future__ import annotations

import argparse
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

    worker = sub.add_parser("worker", help="join a coordinator")
    worker.add_argument("--connect", required=True)
    worker.add_argument("--name")

    val = sub.add_parser("validate", help="check a scenario without running it")
    val.add_argument("scenario")
    val.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "worker":
        from harness.worker import run_worker
        return run_worker(args.connect, args.name)
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
            report = execute(scenario, Path(args.out), target=args.target,
                             workers=args.expect_workers, bind=args.bind,
                             local_workers=False, quiet=args.quiet)
    except (CoordinatorError, MockError) as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if not args.quiet:
        for line in report.lines:
            print(line)
    print(report.run_dir)
    return report.exit_code
