"""``tracecore-perf export RUN --format bmf|github-action-benchmark``: a published run's figures
for Bencher (``bencher run --adapter json --file ...``) or github-action-benchmark
(``tool: customSmallerIsBetter``), on stdout or into ``--output FILE``."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from tracecore_perf.cli.args import PROG, RUN_REF, Parser, add_search_dir
from tracecore_perf.escape import json as escape_json
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
    p.add_argument(
        "--output",
        metavar="FILE",
        help="write it here: a new file, or a regular file that is not a run's own (default: stdout)",
    )
    add_search_dir(p)
    return p


# The names of a published run's own files: evidence, never replaced by an export.
PUBLISHED_NAME = re.compile(r"^perf-[a-z]+-\d{8}T\d{6}Z(?:-\d+)?\.(?:json|zip|html|xml|png|svg)$")


def check_output(raw: str) -> Path:
    """``--output``: a new file, or a regular file (not a link) that is no run's evidence, in
    an existing folder. Raises UsageError naming what is wrong; nothing is written."""
    from tracecore_perf.errors import UsageError

    target = Path(raw)
    if raw.endswith("/") or target.is_dir():
        raise UsageError(f"--output must be a file, not a folder: {raw}")
    if not target.parent.is_dir():
        raise UsageError(f"--output must be a file in an existing folder: {raw}")
    if target.is_symlink() or (target.exists() and not target.is_file()):
        raise UsageError(f"--output {raw} is a link or not a regular file: not replaced")
    if PUBLISHED_NAME.match(target.name):
        raise UsageError(f"--output {raw} is named as a published run's file: not replaced")
    return target


def main(argv: list[str]) -> int:
    from tracecore_perf.errors import UsageError
    from tracecore_perf.export.benchmarks import render
    from tracecore_perf.files import write_atomic

    args = parser().parse_args(argv)
    target = check_output(args.output) if args.output is not None else None
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
