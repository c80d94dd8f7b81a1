"""``tracecore-perf report RUN``: a published run's charts and self-contained HTML report.

Without ``--output-dir`` the report goes beside the run's artifacts, and only when the run has
none there yet (a run published without ``run --report``): a report already beside a run is
part of what was published (the committed baseline's is), so it is never rewritten unasked.
Re-rendering it, or rendering it again with a ``--baseline``, takes a folder named with
``--output-dir``, where the report's files of that run are replaced, as asked.
"""

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
        help=f"a baseline run for the comparison section: {RUN_REF} (default: none, no such section)",
    )
    p.add_argument(
        "--output-dir",
        type=Path,
        metavar="DIR",
        help="where charts and report go: an existing folder, not a link, not in a run directory; the run's report "
        "files there are replaced (default: next to the run's artifacts, only if it has no report there yet)",
    )
    add_search_dir(p)
    add_thresholds(p)
    return p


def main(argv: list[str]) -> int:
    from tracecore_perf.errors import UsageError
    from tracecore_perf.report.page import report_files_in, write_report
    from tracecore_perf.verdicts.check import load_thresholds

    args = parser().parse_args(argv)
    if args.output_dir is not None:  # an existing folder, not a link, not in a run directory
        check_output_path("--output-dir", args.output_dir, "folder")
    run = locate(args.run, args.search_dir)
    baseline = locate(args.baseline, args.search_dir) if args.baseline else None
    # beside the run, however the folder is named (--output-dir of the run's own folder too)
    beside = args.output_dir is None or _same_folder(args.output_dir, run.output_dir)
    if beside and (present := report_files_in(run.output_dir, run.stamp)):
        raise UsageError(
            f"{present[0]} exists: a run's report is written beside it once and then left as published; "
            f"name a folder for another with --output-dir DIR"
        )
    thresholds = load_thresholds(args.thresholds)
    written = write_report(run, baseline, args.output_dir, thresholds)
    print(f"{PROG} report: {written.report}", file=sys.stdout)
    print(f"{PROG} report: {len(written.charts)} chart files beside it (PNG and SVG)", file=sys.stdout)
    return 0


def _same_folder(a: Path, b: Path) -> bool:
    import os

    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
