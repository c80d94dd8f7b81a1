"""``tracecore-perf continuous BASE HEAD [--repo PATH]``: two revisions of a TraceCore git
checkout, each built into a fresh environment the same way, the slice's episodes counted
under Valgrind on both, interleaved, then ``compare`` (asv's ``continuous``)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import msgspec

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
from tracecore_perf.escape import log_line


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog=f"{PROG} continuous",
        description="Build two revisions of a TraceCore git checkout, each into a fresh virtual environment the same way "
        "(the revision's tree installed non-editable, the dependencies HEAD resolves to shared by both, nothing of "
        "tracecore-perf's), count the same episodes under Valgrind on both, interleaved, each side with its own agents, "
        "and compare HEAD with BASE.",
    )
    p.add_argument("base", metavar="BASE", help="the baseline revision (a commit, branch or tag of --repo)")
    p.add_argument("head", metavar="HEAD", help="the revision under test")
    p.add_argument("--repo", type=Path, metavar="PATH", default=Path("."), help="the TraceCore git checkout")
    p.add_argument(
        "--python",
        metavar="PATH",
        help="the interpreter both environments are made from (default: the one running this)",
    )
    p.add_argument(
        "--constraints",
        type=Path,
        metavar="FILE",
        help="a pip constraints file both sides are installed with (default: the versions HEAD resolves to)",
    )
    p.add_argument(
        "--with",
        dest="also",
        action="append",
        default=[],
        metavar="REQUIREMENT",
        help="also install REQUIREMENT into both environments, in the same pip call as the revision (a dependency it "
        "needs but does not declare: TraceCore 1.1.3 imports tomli on Python 3.10 without requiring it); repeatable "
        "(default: none)",
    )
    p.add_argument(
        "--rounds", metavar="N", type=positive_int, default=defaults.CONTINUOUS_ROUNDS, help="chunks per side, run in ABBA order"
    )
    p.add_argument(
        "--scenario",
        type=Path,
        metavar="FILE",
        help="TOML or JSON file of rows with agent, task_ref, seed; agent paths resolve in each revision's own tree "
        "first (default: the built-in scenario)",
    )
    p.add_argument(
        "--output-dir",
        type=Path,
        metavar="DIR",
        help="a new or empty folder for the two sides' runs (DIR/base, DIR/head), their environments (DIR/envs), "
        f"trees (DIR/src), build logs, constraints.txt and continuous.json (default: {defaults.CONTINUOUS_OUTPUT_DIR}/"
        "<UTC time>, a new folder each time)",
    )
    # every run setting but those continuous decides: the interpreters (built), instruction
    # counting (always), and what counting rules out (spawn isolation, the sandbox)
    add_run_settings(
        p.add_argument_group("run settings", "the same for both sides"), skip=("python", "instructions", "isolation", "sandbox")
    )
    add_comparison_flags(p, env_flag=False)
    return p


def _say(line: str) -> None:
    print(log_line(f"{PROG} continuous: {line}"), file=sys.stderr)


def main(argv: list[str]) -> int:
    from tracecore_perf.continuous import plan, run_continuous
    from tracecore_perf.continuous.build import check_base_python, check_requirement
    from tracecore_perf.errors import ExitCode, UsageError, stop_on_sigterm
    from tracecore_perf.run.checks import check_settings
    from tracecore_perf.run.logs import configure
    from tracecore_perf.run.rundir import new_stamp
    from tracecore_perf.run.scenario import DEFAULT_SCENARIO, load_scenario

    args = parser().parse_args(argv)
    settings = settings_from(args)
    if args.output_dir is not None:
        check_output_path("--output-dir", args.output_dir, "runs")
    run_settings = run_settings_from(args, instructions=True, isolation="forkserver")
    base_python = check_base_python(args.python or sys.executable)
    # the run's own checks (workers, valgrind, --memory-limit), as `run` makes them: the sides'
    # interpreters are built below from base_python, and each side's run directory is made there
    check_settings(msgspec.structs.replace(run_settings, python=base_python), None)
    for requirement in args.also:
        check_requirement(requirement)
    if args.constraints is not None and not args.constraints.is_file():
        raise UsageError(f"--constraints {args.constraints}: no such file")
    scenario = load_scenario(args.scenario) if args.scenario else list(DEFAULT_SCENARIO)
    if args.output_dir is None:  # a new folder each time
        parent = Path(defaults.CONTINUOUS_OUTPUT_DIR)
        args.output_dir = parent / new_stamp(parent)
    stop_on_sigterm()  # SIGTERM stops as Ctrl-C does: the build's processes killed, nothing half-built, 143
    request = plan(args.repo, args.base, args.head, args.output_dir)
    configure("console", level=logging.WARNING)
    record, outcome = run_continuous(
        request,
        scenario,
        settings=run_settings,
        rounds=args.rounds,
        base_python=base_python,
        constraints=args.constraints.resolve() if args.constraints else None,
        also=tuple(args.also),
        compare_settings=settings,
        fail_on_regression=args.fail_on == "regression",
        say=_say,
    )
    _say(f"environments built in {record.build_s:.0f} s, episodes counted in {record.episodes_s:.0f} s")
    if record.changed:
        shown = ", ".join(record.changed[:3]) + (f" and {len(record.changed) - 3} more" if len(record.changed) > 3 else "")
        print(
            log_line(
                f"{PROG}: run tainted: a side's environment or tree changed after it was built ({shown}): an agent's code "
                "wrote to it, so no verdict is given (continuous.json lists every path)"
            ),
            file=sys.stderr,
        )
        return ExitCode.TAINTED
    if outcome.comparison is None:
        side = outcome.stopped_side
        _say(f"{side} stopped (exit {outcome.exit_code}); run directory {outcome.run_dirs.get(side)}")
        return outcome.exit_code
    for side in record.sides:
        _say(f"{side.side} = {side.ref} ({side.commit[:12]}) -> {outcome.run_dirs[side.side]}")
    return report_comparison(outcome.comparison, outcome.runs["head"], args, outcome.runs["base"])
