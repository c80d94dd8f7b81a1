"""``tracecore-perf export RUN --format bmf|github-action-benchmark``: a published run's figures
for Bencher (``bencher run --adapter json --file ...``) or github-action-benchmark
(``tool: customSmallerIsBetter``), on stdout or into ``--output FILE``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tracecore_perf.cli.args import PROG, RUN_REF, Parser, add_search_dir
from tracecore_perf.published import locate


def parser() -> argparse.ArgumentParser:
    from tracecore_perf.export.benchmarks import FORMATS

    p = Parser(
        prog=f"{PROG} export",
        description="Write a published run's figures for a continuous-benchmarking service: one benchmark per "
        "scenario row (agent on task), with CPU time, wall-clock p50/p95, instructions (when counted), artifact bytes "
        "and success rate, and the median's 95%% interval where the run has one.",
    )
    p.add_argument("run", help=f"the run: {RUN_REF}")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="bmf",
        help="bmf: Bencher Metric Format (times in ns); github-action-benchmark: its customSmallerIsBetter list "
        "(times in ms, failure rate in %%)",
    )
    p.add_argument("--output", type=Path, metavar="FILE", help="write it here (default: stdout)")
    add_search_dir(p)
    return p


def main(argv: list[str]) -> int:
    from tracecore_perf.errors import UsageError
    from tracecore_perf.export.benchmarks import render
    from tracecore_perf.files import write_atomic

    args = parser().parse_args(argv)
    if args.output is not None and (args.output.is_dir() or not args.output.parent.is_dir()):
        raise UsageError(f"--output must be a file in an existing directory: {args.output}")
    text = render(args.format, locate(args.run, args.search_dir))
    if args.output is None:
        sys.stdout.write(text)
    else:
        write_atomic(args.output, text.encode())
        print(f"{PROG} export: {args.format} written to {args.output}", file=sys.stderr)
    return 0
