"""``python -m tracecore_perf ab --python A --python B --episodes N``: the same planned
episodes under two interpreters (two TraceCore installs), interleaved, then ``compare``.

No second harness: each side is an ordinary run directory built by ``harness.start`` and
then grown chunk by chunk with ``harness.resume``, the harness's own way of finishing a run
(raise the manifest's episode count by a chunk, resume, and the plan runs exactly the
missing episodes: same seeds, same rows, each chunk an attempt in the manifest). The sides
take turns in ABBA order, so slow host drift lands on both alike instead of on whichever
ran second.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from tracecore_perf.errors import UsageError
from tracecore_perf.published import locate
from tracecore_perf.run import harness
from tracecore_perf.run.rundir import RunDir
from tracecore_perf.verdicts.compare import add_comparison_flags, compare_runs, report, settings_from

SIDES = ("A", "B")


def parser():
    from tracecore_perf.cli import _Parser, _positive_float, _positive_int

    p = _Parser(prog="tracecore-perf ab", description="Run the same episodes under two interpreters, interleaved, and compare.")
    p.add_argument(
        "--python", action="append", default=[], metavar="PATH", help="an interpreter with TraceCore; give it twice: A, then B"
    )
    p.add_argument("--episodes", type=_positive_int, default=48, help="episodes per interpreter (default 48)")
    p.add_argument("--workers", type=_positive_int, default=2, help="episodes in parallel (default 2)")
    p.add_argument("--rounds", type=_positive_int, default=4, help="chunks per interpreter, run in ABBA order (default 4)")
    p.add_argument("--timeout", type=_positive_float, default=180.0, help="seconds per episode (default 180)")
    p.add_argument("--scenario", type=Path, help="TOML or JSON file of rows with agent, task_ref, seed")
    p.add_argument("--output-dir", type=Path, default=Path("deliverables/perf/ab"), help="runs go to DIR/a and DIR/b")
    p.add_argument("--strict-spec", action="store_true")
    p.add_argument("--isolation", choices=["forkserver", "spawn"])
    p.add_argument("--sample-interval", type=_positive_float, default=0.5)
    add_comparison_flags(p)
    return p


def chunk_ends(episodes: int, rounds: int) -> list[int]:
    """Cumulative episode counts after each round, as even as whole episodes allow."""
    return sorted({round(episodes * (i + 1) / rounds) for i in range(rounds)})


def main(argv: list[str]) -> int:
    from tracecore_perf.run.launcher import default_isolation
    from tracecore_perf.run.logs import configure
    from tracecore_perf.run.scenario import DEFAULT_SCENARIO, load_scenario

    args = parser().parse_args(argv)
    if len(args.python) != 2:
        raise UsageError(f"--python must be given exactly twice (A, then B), got {len(args.python)}")
    if args.rounds > args.episodes:
        raise UsageError(f"--rounds {args.rounds} is more than --episodes {args.episodes}")
    settings = settings_from(args)
    scenario = load_scenario(args.scenario) if args.scenario else list(DEFAULT_SCENARIO)
    for python in args.python:  # both sides valid before either starts
        harness.preflight(scenario, python, args.isolation or default_isolation(), args.output_dir)
    configure("console", level=logging.WARNING)

    dirs = {side: args.output_dir / side.lower() for side in SIDES}
    run_dirs: dict[str, Path] = {}
    for number, end in enumerate(chunk_ends(args.episodes, args.rounds)):
        for side in SIDES if number % 2 == 0 else SIDES[::-1]:
            python = args.python[SIDES.index(side)]
            print(f"tracecore-perf ab: round {number + 1}, {side} ({python}): episodes up to {end}", file=sys.stderr)
            if side not in run_dirs:
                outcome = harness.start(
                    harness.RunOptions(
                        episodes=end,
                        workers=args.workers,
                        timeout=args.timeout,
                        output_dir=str(dirs[side]),
                        strict_spec=args.strict_spec,
                        compress=False,
                        scenario=scenario,
                        isolation=args.isolation or default_isolation(),
                        python=python,
                        keep_runs="all",
                        sample_interval=args.sample_interval,
                        output_cap=1024 * 1024,
                    ),
                    show_progress=False,
                )
                run_dirs[side] = Path(outcome.run_dir)
            else:
                run_dir = RunDir(run_dirs[side])
                manifest = run_dir.read_manifest()
                manifest.episodes = end
                run_dir.write_manifest(manifest)
                outcome = harness.resume(run_dir.path, output_cap=1024 * 1024, show_progress=False)
            if outcome.exit_code >= 2:  # interrupted or stopped: what ran is kept and resumable
                print(
                    f"tracecore-perf ab: {side} stopped (exit {outcome.exit_code}); run directory {run_dirs[side]}",
                    file=sys.stderr,
                )
                return outcome.exit_code

    runs = {side: locate(run_dirs[side], dirs[side]) for side in SIDES}
    for side in SIDES:
        print(f"tracecore-perf ab: {side} = {args.python[SIDES.index(side)]} -> {run_dirs[side]}", file=sys.stderr)
    comparison = compare_runs(
        runs["A"], runs["B"], settings, fail_on_regression=args.fail_on == "regression", interpreter_ab=True
    )
    return report(comparison, runs["B"], args)
