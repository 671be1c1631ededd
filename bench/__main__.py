"""`make bench`: run the benchmarks, print one ratio line each, write docs/benchmarks.md.

    python -m bench [--full] [--check] [--base REV]
                    [--only target,models,lesson,scale,longwide,tls,journeys,web,data,capacity,
                           profile,http2,versus]

Quick mode (default) keeps the suite within about five minutes; --full measures longer.
--check exits 1 when any goal is missed.
"""

from __future__ import annotations

import argparse
import sys

from bench import (
    capacity,
    data,
    http2,
    journeys,
    lesson,
    longwide,
    models,
    profile,
    scale,
    target,
    tls,
    versus,
    web,
)
from bench.common import write_report

SUITES = {"target": target, "models": models, "lesson": lesson, "scale": scale,
          "longwide": longwide, "tls": tls, "journeys": journeys, "versus": versus, "web": web,
          "data": data, "capacity": capacity, "profile": profile, "http2": http2}
# versus: on demand (--only versus)
DEFAULT = "target,models,lesson,scale,longwide,tls,journeys,web,data,capacity,profile,http2"


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--only", default=DEFAULT)
    parser.add_argument("--base", default=versus.DEFAULT_BASE,
                        help="the commit `versus` measures side by side with this tree")
    args = parser.parse_args()
    quick = not args.full
    sections = []
    for name in args.only.split(","):
        suite = SUITES[name.strip()]
        extra = {"base": args.base} if suite is versus else {}
        for section in suite.run(quick, **extra):
            print(section.ratio_line, flush=True)
            sections.append(section)
    path = write_report(sections, "quick" if quick else "full")
    print(f"written: {path}")
    missed = [goal for s in sections for goal, ok in s.goals if not ok]
    for goal in missed:
        print(f"goal missed: {goal}")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
