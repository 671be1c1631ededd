"""`harness` commands, thin: parse, call, map errors and endings to exit codes.

This is the only place exit codes live:
0 ok · 1 run failed · 2 bad usage or invalid scenario (nothing was sent) ·
3 run finished but partial · 99 thresholds or compare gates crossed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, OptionError, RunError, UsageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL, EXIT_CROSSED = 0, 1, 2, 3, 99
EXIT_GENERATOR = 4   # --strict: a model measured the generator, not the target
MAX_LOCAL_WORKERS = 64   # as the scenario's run.workers: local worker processes


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too; one line, no usage
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _shown(text: str) -> str:
    """An option's value as a message quotes it: escaped, on one line, cut."""
    from harness.scenario.ctx import show
    return show(text)


def _number(kind: type, lo: float, hi: float, unit: str = "") -> Callable[[str], Any]:
    """An argparse type: a finite number in [lo, hi] (nan, inf and 1e9 workers refused)."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            value = None
        if value is None or value != value or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'} {lo:g}..{hi:g}"
                f"{unit}, got {_shown(text)}")
        return value
    return parse


def _path(text: str) -> str:
    """An argparse type for a file or directory to write: not empty (that would be the
    working directory), no control character (the run directory is printed as the last
    line of stdout: a newline in it would split that line)."""
    if not text.strip() or not text.isprintable():
        raise argparse.ArgumentTypeError(f"expected a path, got {_shown(text)}")
    return text


def _name(text: str) -> str:
    """A worker's name: printable, at most 256 characters (it goes into logs and files)."""
    if not text or len(text) > 256 or not text.isprintable():
        raise argparse.ArgumentTypeError(f"expected 1-256 printable characters, got "
                                         f"{_shown(text)}")
    return text


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="harness", description="distributed HTTP load-test harness")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def scenario_args(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument("scenario")
        cmd.add_argument("--out", default="results", type=_path, help="results directory")
        cmd.add_argument("--target", help="target base URL (else the scenario's or embedded)")
        overrides(cmd)
        cmd.add_argument("--quiet", action="store_true")
        cmd.add_argument("--web", nargs="?", const="", metavar="[HOST:]PORT",
                         help="serve a live dashboard and /metrics (bare: 127.0.0.1:8089)")
        cmd.add_argument("--web-token", metavar="TOKEN",
                         help="required by --web off loopback: Bearer token or ?token=")

    def overrides(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="override a scenario value, e.g. load.rate=500")
        cmd.add_argument("--unset", action="append", default=[], metavar="KEY",
                         help="remove a scenario key, e.g. load.rate (applied before --set)")

    run = sub.add_parser("run", help="run a scenario with local workers")
    scenario_args(run)
    strict_help = ("exit 4 when a model measured its own client (client-bound in more "
                   "than a quarter of its measured seconds) and nothing worse happened")
    run.add_argument("--strict", action="store_true", help=strict_help)
    run.add_argument("--workers", type=_number(int, 1, MAX_LOCAL_WORKERS),
                     help="local worker processes")

    coord = sub.add_parser("coordinator", help="run a scenario with remote workers")
    scenario_args(coord)
    coord.add_argument("--strict", action="store_true", help=strict_help)
    coord.add_argument("--bind", default="tcp://127.0.0.1:5555")
    coord.add_argument("--expect-workers", type=_number(int, 1, 100_000), required=True)
    coord.add_argument("--wait-workers", type=_number(float, 0.1, 86400.0, " s"),
                       default=60.0, metavar="SECONDS",
                       help="how long to wait for the workers to join")
    coord.add_argument("--curve-dir", help="CURVE keys (harness keys DIR): encrypt and "
                                           "authenticate workers")
    coord.add_argument("--insecure", action="store_true",
                       help="allow a non-loopback bind without CURVE")
    coord.add_argument("--lost-after", type=_number(float, 0.5, 3600.0, " s"), default=None,
                       metavar="SECONDS",
                       help="silence after which a worker is marked lost (default 4; one "
                            "that comes back is re-admitted)")

    worker = sub.add_parser("worker", help="join a coordinator")
    worker.add_argument("--connect", required=True)
    worker.add_argument("--name", type=_name)
    worker.add_argument("--curve-dir", help="CURVE keys: worker.key_secret, coordinator.key")
    worker.add_argument("--connect-timeout", type=_number(float, 0.1, 86400.0, " s"),
                        default=30.0, metavar="SECONDS")
    worker.add_argument("--journal", type=_path, metavar="FILE",
                        help="keep a journal of what this worker measured: after a "
                             "partition, `harness report RUN_DIR --add FILE` merges it")

    rep = sub.add_parser("report", help="build report.html for a run directory")
    rep.add_argument("run_dir")
    rep.add_argument("--add", action="append", type=_path, metavar="WORKER_JOURNAL",
                     help="merge what a worker measured that the coordinator never "
                          "received (harness worker --journal FILE), then rebuild")
    shown = rep.add_mutually_exclusive_group()
    shown.add_argument("--markdown", action="store_true",
                       help="print a Markdown summary instead (a CI job's summary page)")
    shown.add_argument("--github-output", action="store_true",
                       help="print p99-ms= and rps= lines (JSON by model) for $GITHUB_OUTPUT")

    cmp_ = sub.add_parser("compare", help="compare runs: deltas with significance")
    cmp_.add_argument("inputs", nargs="+", metavar="RUN",
                      help="run directories, summary.csv files or Locust *_stats.csv files; "
                           "the first is the baseline")
    cmp_.add_argument("--format", choices=("table", "markdown", "csv", "json"),
                      default="table")
    cmp_.add_argument("--fail-on", default="", metavar="GATES",
                      help='e.g. "p99:+10%%,rps:-5%%,errors:+0.5pp": exit 99 when crossed')
    cmp_.add_argument("--all", action="store_true", dest="show_all",
                      help="after the rows that changed, print every row")
    cmp_.add_argument("--min-change", type=_percent, default=None, metavar="PERCENT",
                      help="smallest change reported (default 5; the error rate: a tenth "
                           "of it in percentage points)")
    cmp_.add_argument("--baseline", metavar="NAME",
                      help="compare one run against every run of baselines/NAME")
    cmp_.add_argument("--baseline-dir", default="baselines", type=_path, metavar="DIR")
    cmp_.add_argument("--junit", metavar="FILE", type=_path,
                      help="write the gates as JUnit XML")

    base = sub.add_parser("baseline", help="keep runs as a baseline: add, show")
    base_sub = base.add_subparsers(dest="action", required=True, parser_class=_Parser)
    base_add = base_sub.add_parser("add", help="copy runs into baselines/NAME")
    base_add.add_argument("name")
    base_add.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    base_show = base_sub.add_parser("show", help="list a baseline's runs and its noise")
    base_show.add_argument("name")
    for cmd in (base_add, base_show):
        cmd.add_argument("--dir", default="baselines", type=_path,
                         help="where baselines live")
    base_show.add_argument("--html", metavar="FILE", type=_path,
                           help="also write a trend chart of each metric over the runs")

    keys = sub.add_parser("keys", help="make CURVE key pairs for coordinator and workers")
    keys.add_argument("dir", type=_path)

    val = sub.add_parser("validate", help="check a scenario without running it")
    val.add_argument("scenario")
    overrides(val)

    har = sub.add_parser("import-har", help="turn a browser recording into a scenario")
    har.add_argument("recording", help="a HAR file (browser devtools: Save all as HAR)")
    har.add_argument("-o", "--output", type=_path,
                     help="scenario file to write (default: stdout)")
    har.add_argument("--include-static", action="store_true",
                     help="keep images, scripts, styles and fonts")
    har.add_argument("--keep-auth", action="store_true",
                     help="keep Authorization and other credential headers")
    return p


# -- commands: each returns an exit code or raises a HarnessError ----------------------------

def cmd_keys(args: argparse.Namespace) -> int:
    from harness.control.curve import make_keys
    try:
        paths = make_keys(args.dir)
    except OSError as exc:
        raise OptionError(f"keys {args.dir}: cannot write: {exc.strerror or exc}") from None
    for path in paths:
        print(path)
    return EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    from harness.control.endpoints import endpoint_problem
    from harness.control.worker import run_worker
    if problem := endpoint_problem(args.connect, bind=False):
        raise OptionError(f"--connect {args.connect}: {problem}")
    curve = None
    if args.curve_dir:
        from harness.control.curve import worker_keys
        curve = _curve_option(worker_keys, args.curve_dir)
    return run_worker(args.connect, args.name, curve, args.connect_timeout,
                      Path(args.journal) if args.journal else None)


def cmd_report(args: argparse.Namespace) -> int:
    """report.html for a run; a run that never finished is first recovered from its
    journal (every result file rebuilt, partial), which exits 3."""
    from harness.recover import recover, unfinished
    from harness.reports.html import build_report
    if args.add:
        from harness.recover import add_journals
        if unfinished(Path(args.run_dir)):
            recover(Path(args.run_dir))
        return _ended(add_journals(Path(args.run_dir), [Path(p) for p in args.add]),
                      quiet=False)
    if args.markdown or args.github_output:
        from harness.reports.markdown import github_outputs, markdown
        out = markdown if args.markdown else github_outputs
        print(out(Path(args.run_dir)), end="")
        return EXIT_OK
    if unfinished(Path(args.run_dir)):
        return _ended(recover(Path(args.run_dir)), quiet=False)
    print(build_report(args.run_dir))
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.reports.compare import MIN_CHANGE, run_compare
    min_change = MIN_CHANGE if args.min_change is None else args.min_change
    if args.baseline is not None:
        from harness.reports.baselines import compare_baseline
        if len(args.inputs) != 1:
            raise OptionError("--baseline: give exactly one run directory to compare")
        comparison = compare_baseline(Path(args.baseline_dir), args.baseline, args.inputs[0],
                                      args.format, args.fail_on, args.show_all, min_change)
    else:
        comparison = run_compare(args.inputs, args.format, args.fail_on, args.show_all,
                                 min_change)
    if args.junit:
        from harness.reports.junit import write_compare_junit
        try:
            write_compare_junit(Path(args.junit), comparison.rows, comparison.gates,
                                args.baseline or args.inputs[0])
        except OSError as exc:
            raise OptionError(f"--junit {args.junit}: cannot write: "
                              f"{exc.strerror or exc}") from None
    for line in comparison.notes:
        print(line, file=sys.stderr)
    print(comparison.text)
    for line in comparison.crossed:
        print(f"gate crossed: {line}", file=sys.stderr)
    return EXIT_CROSSED if comparison.crossed else EXIT_OK


def cmd_baseline(args: argparse.Namespace) -> int:
    from harness.reports import baselines
    root = Path(args.dir)
    if args.action == "add":
        try:
            added = baselines.add(root, args.name, args.run_dirs)
        except OSError as exc:
            raise OptionError(f"--dir {args.dir}: cannot write: {exc.strerror or exc}") \
                from None
        for path in added:
            print(path)
        runs = len(baselines.stored_runs(root, args.name))
        if runs < baselines.MIN_RUNS:
            print(f"note: baseline {args.name} has {runs} run(s); compare gates need at "
                  f"least {baselines.MIN_RUNS}", file=sys.stderr)
        return EXIT_OK
    print(baselines.show(root, args.name))
    if args.html:
        from harness.reports.trend import write_trend
        try:
            write_trend(root, args.name, Path(args.html))
        except OSError as exc:
            raise OptionError(f"--html {args.html}: cannot write: {exc.strerror or exc}") \
                from None
        print(args.html)
    return EXIT_OK


def _say_notes(notes: tuple[str, ...]) -> None:
    """What validation found worth saying without refusing, one stderr line each."""
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)


def cmd_validate(args: argparse.Namespace) -> int:
    from harness.scenario import load_scenario
    scenario = load_scenario(args.scenario, args.set, args.unset)
    _say_notes(scenario.notes)
    flows = f", {_count(len(scenario.flows), 'flow')}" if scenario.flows else ""
    print(f"{args.scenario}: ok ({_count(len(scenario.models), 'model')}, "
          f"{_count(len(scenario.requests), 'request')}{flows})")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """`harness run` and `harness coordinator`: everything checked before anything starts."""
    from harness.scenario import load_scenario
    scenario = load_scenario(args.scenario, args.set, args.unset)
    _say_notes(scenario.notes)
    if args.target is not None:
        from harness.scenario.target import target_url
        args.target, problem = target_url(args.target)
        if problem:
            raise OptionError(f"--target: {problem}")
    url = args.target or scenario.target_url
    tls_set = "tls" in scenario.raw.get("target", {})
    if url and url.startswith("http://") and (tls_set or scenario.handshake == "resume"):
        what = "[target.tls]" if tls_set else 'handshake = "resume"'
        raise OptionError(f"--target {url}: {args.scenario} sets {what}, which needs an "
                          "https:// URL")
    if scenario.mock and (args.target or scenario.target_url):
        given = "--target" if args.target else "[target].url"
        print(f"note: {given} is set, so [target.mock] in {args.scenario} is ignored (it "
              "configures the embedded mockserver only)", file=sys.stderr)
    web = _web_option(args)
    if problem := out_dir_problem(Path(args.out)):
        raise OptionError(f"--out {args.out}: {problem}")
    workers = getattr(args, "workers", None)

    from harness.run import execute
    if args.command == "run":
        done = execute(scenario, Path(args.out), target=args.target, workers=workers,
                       quiet=args.quiet, web=web)
    else:
        lost_after = {} if args.lost_after is None else {"lost_after_s": args.lost_after}
        done = execute(scenario, Path(args.out), target=args.target,
                       workers=args.expect_workers, bind=args.bind, local_workers=False,
                       quiet=args.quiet, coordinator_kwargs=_coordinator_security(args),
                       wait_workers=args.wait_workers, web=web, **lost_after)
    return _ended(done, args.quiet, args.strict)


def _ended(done: Any, quiet: bool, strict: bool = False) -> int:
    """Print a finished run's lines and its directory (always the last line); its exit.
    The run is over and written: a late Ctrl-C or SIGTERM no longer changes how it ends."""
    from harness.run import Ending
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    problems = done.problems
    if not quiet:
        for line in done.lines:
            if line not in problems:
                print(line)
    for line in problems:   # why it failed: on stderr, with --quiet too
        print(line, file=sys.stderr)
    generator = strict and bool(done.invalid) and done.ending == Ending.OK
    if generator:
        print(f"measured the generator, not the target: {', '.join(done.invalid)} "
              "(--strict)", file=sys.stderr)
    print(done.run_dir)
    if generator:
        return EXIT_GENERATOR
    return {Ending.OK: EXIT_OK, Ending.THRESHOLDS: EXIT_CROSSED, Ending.PARTIAL: EXIT_PARTIAL,
            Ending.FAILED: EXIT_FAILED}[done.ending]


def cmd_import_har(args: argparse.Namespace) -> int:
    from harness.scenario.har import import_har, write_scenario
    notes: list[str] = []
    tables = import_har(Path(args.recording), include_static=args.include_static,
                        keep_auth=args.keep_auth, notes=notes)
    out = Path(args.output) if args.output else None
    text = write_scenario(tables, out)
    for line in notes:
        print(line, file=sys.stderr)
    if out is None:
        print(text, end="")
    else:
        steps = len(tables["flows"][0]["steps"])
        print(f"{out}: one flow of {_count(steps, 'step')} against {tables['target']['url']}")
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run, "coordinator": cmd_run, "worker": cmd_worker, "report": cmd_report,
    "compare": cmd_compare, "keys": cmd_keys, "validate": cmd_validate,
    "import-har": cmd_import_har, "baseline": cmd_baseline,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (RunError, HarnessError) as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return EXIT_FAILED


# -- option checks ---------------------------------------------------------------------------

def _percent(text: str) -> float:
    """--min-change: a number of percent, 0..1000 (argparse shows the message)."""
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage, got {text[:40]!r}") \
            from None
    if not 0 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"expected 0..1000, got {text[:40]!r}")
    return value


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


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


def _web_option(args: argparse.Namespace) -> tuple[str, int, str | None] | None:
    """--web and --web-token, checked before the scenario's run starts anything."""
    if args.web is None:
        if args.web_token is not None:
            raise OptionError("--web-token: given without --web")
        return None
    from harness.live.web import check_web, parse_web
    host, port = parse_web(args.web)
    check_web(host, port, args.web_token)
    return host, port, args.web_token


def _curve_option(load: Callable[[str], Any], directory: str) -> Any:
    from harness.errors import KeyFileError
    try:
        return load(directory)
    except KeyFileError as exc:
        raise OptionError(f"--curve-dir: {exc}") from None


def _coordinator_security(args: argparse.Namespace) -> dict[str, Any]:
    """CURVE when asked; without it, only a loopback bind unless --insecure."""
    from harness.control.endpoints import endpoint_problem, is_loopback_endpoint
    if problem := endpoint_problem(args.bind, bind=True):
        raise OptionError(f"--bind {args.bind}: {problem}")
    if args.curve_dir:
        from harness.control.curve import coordinator_security
        secret, auth = _curve_option(coordinator_security, args.curve_dir)
        return {"curve_secret": secret, "authenticator": auth}
    if not is_loopback_endpoint(args.bind) and not args.insecure:
        raise OptionError(f"--bind {args.bind} is not loopback: give --curve-dir "
                          "(harness keys DIR) or --insecure")
    return {}
