"""``tracecore-perf export RUN --format bmf|github-action-benchmark``: a published run's figures
for Bencher (``bencher run --adapter json --file ...``) or github-action-benchmark
(``tool: customSmallerIsBetter``), on stdout or into ``--output FILE``."""

from __future__ import annotations

import argparse
import sys

from tracecore_perf.cli.args import PROG, RUN_REF, Parser, add_search_dir, check_output_path
from tracecore_perf.escape import json as escape_json
from tracecore_perf.published import locate


def parser() -> argparse.ArgumentParser:
    from tracecore_perf.export.benchmarks import FORMATS

    p = Parser(
        prog=f"{PROG} export",
        description="Write a published run's figures for a continuous-benchmarking service: one benchmark per "
        "group (agent on task), with CPU time, wall-clock p50/p95, instructions (when counted), artifact bytes "
        "and success rate, and the median's 95% interval where the run has one.",
    )
    p.add_argument("run", help=f"the run: {RUN_REF}")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="bmf",
        help="bmf: Bencher Metric Format (times in ns); github-action-benchmark: its customSmallerIsBetter list "
        "(times in ms, failure rate in %%)",
    )
    p.add_argument(
        "--output",
        metavar="FILE",
        help="write it here: a new file, or an earlier export (never a run's files, a link, a device or another file) "
        "(default: stdout)",
    )
    add_search_dir(p)
    return p


def main(argv: list[str]) -> int:
    from tracecore_perf.errors import UsageError
    from tracecore_perf.export.benchmarks import render
    from tracecore_perf.files import write_atomic

    args = parser().parse_args(argv)
    target = check_output_path("--output", args.output, "export") if args.output is not None else None
    text = render(args.format, locate(args.run, args.search_dir))
    if target is None:
        sys.stdout.write(escape_json(text))  # the same document; no ##[ for a CI runner to read
        return 0
    try:
        write_atomic(target, text.encode())
    except OSError as exc:
        raise UsageError(f"cannot write --output {args.output}: {exc.strerror or exc}") from None
    print(f"{PROG} export: {args.format} written to {target}", file=sys.stderr)
    return 0
