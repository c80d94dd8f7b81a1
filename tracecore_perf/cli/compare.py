"""``tracecore-perf compare BASELINE CURRENT``: per group (agent, task_ref), is CURRENT faster, slower or
no change?"""

from __future__ import annotations

import argparse

from tracecore_perf.cli.args import PROG, RUN_REF, Parser, add_comparison_flags, add_search_dir, settings_from
from tracecore_perf.cli.output import report_comparison
from tracecore_perf.published import locate


def parser() -> argparse.ArgumentParser:
    p = Parser(prog=f"{PROG} compare", description="Compare a run against a baseline, row by row, with statistics.")
    p.add_argument("baseline", help=f"the baseline: {RUN_REF}")
    p.add_argument("current", help=f"the current run: {RUN_REF}")
    add_search_dir(p)
    add_comparison_flags(p)
    p.add_argument(  # compare's alone: ab builds both of its sides alike
        "--allow-setup-mismatch",
        action="store_true",
        help="compare runs set up differently (workers, isolation, strict spec, scenario rows) with a warning",
    )
    p.add_argument(
        "--same-runtime",
        action="store_true",
        help="refuse (exit 2) runs whose Python build, TraceCore or Valgrind differ, naming the run that records a new "
        "baseline: a CI gate compares code with code",
    )
    p.add_argument(
        "--allow-tainted",
        action="store_true",
        help="compare a tainted run (its evidence tampered with) anyway, with a TAINTED RUN warning in every format; "
        "refused otherwise (exit 2)",
    )
    return p


def main(argv: list[str]) -> int:
    from tracecore_perf.verdicts.compare import compare_runs

    args = parser().parse_args(argv)
    settings = settings_from(args)
    baseline = locate(args.baseline, args.search_dir)
    current = locate(args.current, args.search_dir)
    comparison = compare_runs(
        baseline,
        current,
        settings,
        fail_on_regression=args.fail_on == "regression",
        allow_setup_mismatch=args.allow_setup_mismatch,
        same_runtime=args.same_runtime,
        allow_env_difference=args.allow_env_difference,
        allow_tainted=args.allow_tainted,
    )
    return report_comparison(comparison, current, args, baseline)
