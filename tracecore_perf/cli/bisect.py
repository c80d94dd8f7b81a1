"""``tracecore-perf bisect GOOD BAD [--repo PATH]``: the first commit between two revisions of a
TraceCore git checkout whose instruction-counted rows cost past the margin, each revision
tested built as ``continuous`` builds it, in about log2(N) builds.

Exit codes: 0 the first bad commit found; 1 no single answer (BAD is not worse than GOOD past
the margin, or revisions that could not be built lie at the step: the candidates are listed);
2 bad input, nothing built; 3 a revision's run had to stop; 4 a revision's environment or
tree changed while its episodes ran (an agent's code); 130/143 interrupted."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import msgspec

from tracecore_perf import defaults
from tracecore_perf.cli.args import PROG, Parser, add_run_settings, alpha, check_output_path, fraction, run_settings_from
from tracecore_perf.escape import log_line

OUTPUT_DIR = f"{defaults.OUTPUT_DIR}/bisect"


def parser() -> argparse.ArgumentParser:
    counts = defaults.COMPARE_INSTRUCTIONS
    p = Parser(
        prog=f"{PROG} bisect",
        description="Find the first commit between GOOD and BAD (BAD's first-parent line) of a TraceCore git checkout "
        "whose instruction counts regressed past the margin: each revision tested is built as continuous builds a side "
        "(the dependencies BAD resolves to shared by all), its episodes counted once under Valgrind and compared with "
        "GOOD's; a binary search, about log2(N) builds. Exit 0: found; 1: BAD is not worse than GOOD, or no single "
        "answer; 2: bad input, nothing built.",
    )
    p.add_argument("good", metavar="GOOD", help="a revision without the regression (a commit, branch or tag of --repo)")
    p.add_argument("bad", metavar="BAD", help="a later revision with it; GOOD must be on its first-parent line")
    p.add_argument("--repo", type=Path, metavar="PATH", default=Path("."), help="the TraceCore git checkout")
    p.add_argument(
        "--python", metavar="PATH", help="the interpreter every environment is made from (default: the one running this)"
    )
    p.add_argument(
        "--constraints",
        type=Path,
        metavar="FILE",
        help="a pip constraints file every revision is installed with (default: the versions BAD resolves to)",
    )
    p.add_argument(
        "--with",
        dest="also",
        action="append",
        default=[],
        metavar="REQUIREMENT",
        help="also install REQUIREMENT into every environment, in the same pip call as the revision; repeatable (default: none)",
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
        help="a new or empty folder for each tested revision's run (DIR/runs/<commit>), environment (DIR/envs), tree "
        f"(DIR/src), build log, constraints.txt and bisect.json (default: {OUTPUT_DIR}/<UTC time>, a new folder each time)",
    )
    p.add_argument("--alpha", type=alpha, help=f"significance level after adjustment (default: {counts['alpha']:g})")
    p.add_argument(
        "--noise", type=fraction, help=f"changes smaller than this fraction are no change (default: {counts['noise']:g})"
    )
    p.add_argument(
        "--margin", type=fraction, help=f"a row more than this fraction dearer than GOOD's is bad (default: {counts['margin']:g})"
    )
    p.add_argument("--format", choices=["text", "json"], default="text", help="stdout: the table, or bisect.json's record")
    add_run_settings(
        p.add_argument_group("run settings", "the same for every revision"),
        skip=("python", "instructions", "isolation", "sandbox"),
    )
    return p


def _say(line: str) -> None:
    print(log_line(f"{PROG} bisect: {line}"), file=sys.stderr)


def main(argv: list[str]) -> int:
    from tracecore_perf.continuous.bisect import plan, render, run_bisect, step_runs
    from tracecore_perf.continuous.build import check_base_python, check_requirement
    from tracecore_perf.errors import ExitCode, UsageError, stop_on_sigterm
    from tracecore_perf.run.checks import check_settings
    from tracecore_perf.run.logs import configure
    from tracecore_perf.run.rundir import new_stamp
    from tracecore_perf.run.scenario import DEFAULT_SCENARIO, load_scenario
    from tracecore_perf.verdicts.compare import Settings

    args = parser().parse_args(argv)
    if args.output_dir is not None:
        check_output_path("--output-dir", args.output_dir, "runs")
    run_settings = run_settings_from(args, instructions=True, isolation="forkserver")
    base_python = check_base_python(args.python or sys.executable)
    check_settings(msgspec.structs.replace(run_settings, python=base_python), None)
    for requirement in args.also:
        check_requirement(requirement)
    if args.constraints is not None and not args.constraints.is_file():
        raise UsageError(f"--constraints {args.constraints}: no such file")
    scenario = load_scenario(args.scenario) if args.scenario else list(DEFAULT_SCENARIO)
    if args.output_dir is None:  # a new folder each time
        parent = Path(OUTPUT_DIR)
        args.output_dir = parent / new_stamp(parent)
    stop_on_sigterm()  # SIGTERM stops as Ctrl-C does: a build's processes killed, 143
    request = plan(args.repo, args.good, args.bad, args.output_dir)
    configure("console", level=logging.WARNING)
    record = run_bisect(
        request,
        scenario,
        settings=run_settings,
        base_python=base_python,
        constraints=args.constraints.resolve() if args.constraints else None,
        also=tuple(args.also),
        compare_settings=Settings(metric="instructions", alpha=args.alpha, noise=args.noise, margin=args.margin),
        say=_say,
    )
    _say(f"{record.builds} builds in {record.build_s:.0f} s, episodes counted in {record.episodes_s:.0f} s")
    if record.changed:
        shown = ", ".join(record.changed[:3]) + (f" and {len(record.changed) - 3} more" if len(record.changed) > 3 else "")
        print(
            log_line(f"{PROG}: run tainted: a revision's environment or tree changed after it was built ({shown})"),
            file=sys.stderr,
        )
        return ExitCode.TAINTED
    if args.format == "json":
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(record), indent=2).decode() + "\n")
    else:
        sys.stdout.write(render(record))
    _say(f"the record: {request.output_dir / 'bisect.json'}")
    runs = step_runs(record)
    if runs is not None and args.format == "text":
        _explain(*runs)
    return record.exit_code


def _explain(base, current) -> None:
    """The step explained: the functions that account for each row it made dearer (the
    explain command printed above gives the same)."""
    from tracecore_perf.errors import UsageError
    from tracecore_perf.explain import explain_runs
    from tracecore_perf.explain.render import render_text

    try:
        text = render_text(explain_runs(base, current))
    except UsageError as exc:  # the answer stands; the explanation is a help to it
        _say(f"the step could not be explained: {exc}")
        return
    sys.stdout.write("\n" + text.rstrip("\n") + "\n")
