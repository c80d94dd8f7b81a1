"""``tracecore-perf report RUN``: a published run's charts and self-contained HTML report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tracecore_perf.cli.args import PROG, RUN_REF, Parser, add_search_dir, add_thresholds, check_output_path
from tracecore_perf.published import locate


def parser() -> argparse.ArgumentParser:
    p = Parser(prog=f"{PROG} report", description="Render a published run's charts and a self-contained HTML report.")
    p.add_argument("run", help=f"the run: {RUN_REF}")
    p.add_argument(
        "--baseline",
        metavar="REF",
        help=f"a reference run for the comparison section: {RUN_REF} (default: none, no such section)",
    )
    p.add_argument(
        "--output-dir",
        type=Path,
        metavar="DIR",
        help="where charts and report go: an existing folder, not a link, not in a run directory (default: next to "
        "the run's artifacts)",
    )
    add_search_dir(p)
    add_thresholds(p)
    return p


def main(argv: list[str]) -> int:
    from tracecore_perf.report.page import write_report
    from tracecore_perf.verdicts.check import load_thresholds

    args = parser().parse_args(argv)
    if args.output_dir is not None:  # an existing folder, not a link, not in a run directory
        check_output_path("--output-dir", args.output_dir, "folder")
    run = locate(args.run, args.search_dir)
    baseline = locate(args.baseline, args.search_dir) if args.baseline else None
    thresholds = load_thresholds(args.thresholds)
    written = write_report(run, baseline, args.output_dir, thresholds)
    print(f"{PROG} report: {written.report}", file=sys.stdout)
    print(f"{PROG} report: {len(written.charts)} chart files beside it (PNG and SVG)", file=sys.stdout)
    return 0
