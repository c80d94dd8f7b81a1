"""``tracecore-perf ab --python A --python B --episodes N``: the same episodes under two
interpreters, interleaved in ABBA chunks, then ``compare``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tracecore_perf import defaults
from tracecore_perf.cli.args import (
    PROG,
    Parser,
    add_comparison_flags,
    add_run_settings,
    check_output_path,
    positive_int,
    run_settings_from,
    settings_from,
)
from tracecore_perf.cli.output import report_comparison
from tracecore_perf.errors import UsageError
from tracecore_perf.escape import log_line


def parser() -> argparse.ArgumentParser:
    p = Parser(prog=f"{PROG} ab", description="Run the same episodes under two interpreters, interleaved, and compare.")
    p.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="PATH",
        help="an interpreter with TraceCore; give it twice: A (the baseline), then B (default: none, required)",
    )
    p.add_argument(
        "--rounds", metavar="N", type=positive_int, default=defaults.AB_ROUNDS, help="chunks per interpreter, run in ABBA order"
    )
    p.add_argument(
        "--scenario",
        type=Path,
        metavar="FILE",
        help="TOML or JSON file of rows with agent, task_ref, seed (default: the built-in scenario)",
    )
    p.add_argument(
        "--output-dir", type=Path, metavar="DIR", default=Path(defaults.AB_OUTPUT_DIR), help="runs go to DIR/a and DIR/b"
    )
    # every run setting but the interpreter, which ab takes twice: the same for both sides
    add_run_settings(p.add_argument_group("run settings", "the same for both sides"), skip=("python",))
    p.set_defaults(episodes=defaults.AB_EPISODES, workers=defaults.AB_WORKERS)
    add_comparison_flags(p)
    return p


def _say(line: str) -> None:
    print(log_line(f"{PROG} ab: {line}"), file=sys.stderr)


def main(argv: list[str]) -> int:
    from tracecore_perf.ab import SIDES, run_ab
    from tracecore_perf.run.logs import configure
    from tracecore_perf.run.scenario import DEFAULT_SCENARIO, load_scenario

    args = parser().parse_args(argv)
    if len(args.python) != 2:
        raise UsageError(f"--python must be given exactly twice (A, then B), got {len(args.python)}")
    settings = settings_from(args)
    check_output_path("--output-dir", args.output_dir, "runs")
    run_settings = run_settings_from(args)  # run_ab resolves the isolation and checks --instructions
    scenario = load_scenario(args.scenario) if args.scenario else list(DEFAULT_SCENARIO)
    configure("console", level=logging.WARNING)
    outcome = run_ab(
        (args.python[0], args.python[1]),
        scenario,
        output_dir=args.output_dir,
        settings=run_settings,
        rounds=args.rounds,
        compare_settings=settings,
        fail_on_regression=args.fail_on == "regression",
        allow_env_difference=args.allow_env_difference,
        say=_say,
    )
    if outcome.comparison is None:
        side = outcome.stopped_side
        _say(f"{side} stopped (exit {outcome.exit_code}); run directory {outcome.run_dirs.get(side)}")
        return outcome.exit_code
    for side in SIDES:
        _say(f"{side} = {args.python[SIDES.index(side)]} -> {outcome.run_dirs[side]}")
    return report_comparison(outcome.comparison, outcome.runs["B"], args, outcome.runs["A"])
