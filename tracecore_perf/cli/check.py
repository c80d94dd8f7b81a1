"""``tracecore-perf check RUN``: the thresholds and the trend checks on one published run."""

from __future__ import annotations

import argparse

from tracecore_perf.cli.args import (
    PROG,
    RUN_REF,
    Parser,
    add_output_format,
    add_search_dir,
    add_thresholds,
    check_junit_target,
)
from tracecore_perf.cli.output import emit
from tracecore_perf.published import locate


def parser() -> argparse.ArgumentParser:
    p = Parser(prog=f"{PROG} check", description="Check a published run against thresholds and trend checks.")
    p.add_argument("run", help=f"the run: {RUN_REF}")
    p.add_argument(
        "--baseline",
        metavar="REF",
        help=f"baseline run, its failure reasons allowed and its success rate compared: {RUN_REF} (default: none)",
    )
    add_thresholds(p)
    add_output_format(p, "perf-check-<stamp>.junit.xml next to the run")
    add_search_dir(p)
    p.add_argument("--no-trends", action="store_true", help="thresholds only")
    return p


def main(argv: list[str]) -> int:
    from tracecore_perf.verdicts.check import evaluate, load_thresholds

    args = parser().parse_args(argv)
    check_junit_target(args.format, args.junit_file)  # before any work
    thresholds = load_thresholds(args.thresholds)
    if args.no_trends:
        thresholds.trends = False
    run = locate(args.run, args.search_dir)
    baseline = locate(args.baseline, args.search_dir) if args.baseline else None
    verdict = evaluate(run, thresholds, baseline)
    emit(args.format, verdict, args.junit_file or run.output_dir / f"perf-check-{run.stamp}.junit.xml")
    return 0 if verdict.ok else 1
