"""Command line: ``python -m tracecore_perf [run] [flags]`` and the verdict subcommands.

Exit codes: 0 every episode succeeded (or every threshold held), 1 an episode failed (or a
threshold broke), 2 bad input, 3 the run had to stop (disk full, output gone), 4 the run's
evidence was tampered with (published as ``tainted``), 130/143 interrupted by SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import msgspec

from tracecore_perf.errors import RunAborted, UsageError

PROG = "tracecore-perf"
RUN_DEFAULTS = {
    "episodes": 24,
    "workers": 4,
    "timeout": 180.0,
    "output_dir": "deliverables/perf",
    "sample_interval": 0.5,
    "keep_runs": "all",
    "output_cap": 1024 * 1024,
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (raised, so main() prints it once)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def run_parser() -> argparse.ArgumentParser:
    from tracecore_perf.run.launcher import default_isolation

    parser = _Parser(prog=PROG, description="Run TraceCore episodes, each in its own process, and publish perf evidence.")
    parser.add_argument("--episodes", type=_positive_int, help="episodes to run (default 24)")
    parser.add_argument("--workers", type=_positive_int, help="episodes in parallel (default 4)")
    parser.add_argument(
        "--timeout", type=_positive_float, help="seconds per episode before its process tree is killed (default 180)"
    )
    parser.add_argument("--output-dir", help="where run directories and artifacts go (default deliverables/perf)")
    parser.add_argument(
        "--strict-spec", action="store_true", default=None, help="fail episodes whose artifact breaks TraceCore's spec"
    )
    parser.add_argument("--compress", action="store_true", default=None, help="also write perf-artifacts-<stamp>.zip")
    parser.add_argument("--scenario", type=Path, help="TOML or JSON file of rows with agent, task_ref, seed")
    parser.add_argument(
        "--isolation", choices=["forkserver", "spawn"], help=f"how episode processes start (default {default_isolation()})"
    )
    parser.add_argument("--python", help="interpreter (with TraceCore installed) that runs the episodes")
    parser.add_argument(
        "--keep-runs", choices=["all", "failed", "none"], help="TraceCore run artifacts left in the run directory (default all)"
    )
    parser.add_argument("--sample-interval", type=_positive_float, help="seconds between resource samples (default 0.5)")
    parser.add_argument("--output-cap", type=_positive_int, help="bytes of each episode's stdout+stderr kept (default 1 MiB)")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR", help="finish an interrupted run from its run directory")
    parser.add_argument(
        "--report", action="store_true", help="also write charts and perf-report-<stamp>.html next to the artifacts"
    )
    parser.add_argument("--json", action="store_true", help='print {"ok", "stamp", "artifacts", "summary"} instead of the table')
    parser.add_argument("--log-format", choices=["console", "json"], default="console", help="stderr log format")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    parser.add_argument("--check", action="store_true", help="check the run against the thresholds when it ends (see `check`)")
    return parser


def cmd_run(argv: list[str]) -> int:
    from tracecore_perf.run import harness
    from tracecore_perf.run.console import print_summary
    from tracecore_perf.run.launcher import default_isolation, default_python
    from tracecore_perf.run.logs import configure
    from tracecore_perf.run.scenario import DEFAULT_SCENARIO, load_scenario

    args = run_parser().parse_args(argv)
    thresholds = None
    if args.check:  # bad thresholds are bad input: exit 2 before any episode starts
        from tracecore_perf.verdicts.check import after_run, load_thresholds

        thresholds = load_thresholds()
    report_thresholds = None
    if args.report:  # the report's verdict reads the same thresholds: bad ones are bad input too
        from tracecore_perf.verdicts.check import load_thresholds

        report_thresholds = thresholds if thresholds is not None else load_thresholds()
    configure(args.log_format)
    show_progress = not (args.no_progress or args.json)
    if args.resume is not None:
        given = [
            name
            for name in (
                "episodes",
                "workers",
                "timeout",
                "output_dir",
                "scenario",
                "isolation",
                "python",
                "keep_runs",
                "sample_interval",
                "strict_spec",
                "compress",
            )
            if getattr(args, name) is not None
        ]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise UsageError(f"--resume takes the run's parameters from its manifest; drop {flag}")
        outcome = harness.resume(
            args.resume, output_cap=args.output_cap or RUN_DEFAULTS["output_cap"], show_progress=show_progress
        )
        if outcome.publication is None and outcome.stopped is None:
            print(f"{PROG}: run already complete, nothing to resume: {args.resume}", file=sys.stderr)
            return outcome.exit_code
    else:
        options = harness.RunOptions(
            episodes=args.episodes or RUN_DEFAULTS["episodes"],
            workers=args.workers or RUN_DEFAULTS["workers"],
            timeout=args.timeout or RUN_DEFAULTS["timeout"],
            output_dir=args.output_dir or RUN_DEFAULTS["output_dir"],
            strict_spec=bool(args.strict_spec),
            compress=bool(args.compress),
            scenario=load_scenario(args.scenario) if args.scenario else list(DEFAULT_SCENARIO),
            isolation=args.isolation or default_isolation(),
            python=args.python or default_python(),
            keep_runs=args.keep_runs or RUN_DEFAULTS["keep_runs"],
            sample_interval=args.sample_interval or RUN_DEFAULTS["sample_interval"],
            output_cap=args.output_cap or RUN_DEFAULTS["output_cap"],
        )
        outcome = harness.start(options, show_progress=show_progress)

    if outcome.stopped is not None:
        print(f"{PROG}: run stopped: {outcome.stopped} (rows so far kept in {outcome.run_dir})", file=sys.stderr)
    publication = outcome.publication
    if publication is None:
        return outcome.exit_code
    artifacts = dict(publication.artifacts)
    exit_code = outcome.exit_code
    if args.report:
        # Imported only here: a run without --report never loads matplotlib.
        from tracecore_perf.report import page as report

        try:
            artifacts["report"] = str(report.report_after_run(Path(publication.artifacts["manifest"]), report_thresholds))
        except Exception as exc:  # the run is published whatever happens to its report
            print(f"{PROG}: report not written: {type(exc).__name__}: {exc}", file=sys.stderr)
            exit_code = exit_code or 1
    if args.json:
        payload = {
            "ok": exit_code == 0,
            "stamp": publication.stamp,
            "artifacts": artifacts,
            "summary": msgspec.to_builtins(publication.summary),
        }
        check_code = 0 if thresholds is None else after_run(publication.stamp, Path(outcome.run_dir).parent, thresholds, payload)
        print(json.dumps(payload, indent=2))
    else:
        print_summary(publication.summary, artifacts, outcome.run_dir)
        check_code = 0 if thresholds is None else after_run(publication.stamp, Path(outcome.run_dir).parent, thresholds)
    return exit_code or check_code


# Subcommands other than ``run``: name -> function(argv) -> exit code. Each lives in the
# module of its stage and is imported only when called.
def _lazy(module: str, function: str = "main") -> Callable[[list[str]], int]:
    def call(argv: list[str]) -> int:
        import importlib

        return getattr(importlib.import_module(module), function)(argv)

    return call


SUBCOMMANDS: dict[str, Callable[[list[str]], int]] = {
    "run": cmd_run,
    "check": _lazy("tracecore_perf.verdicts.check"),
    "compare": _lazy("tracecore_perf.verdicts.compare"),
    "ab": _lazy("tracecore_perf.verdicts.ab"),
    "report": _lazy("tracecore_perf.report.page"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = cmd_run
    if argv and argv[0] in SUBCOMMANDS:
        command = SUBCOMMANDS[argv.pop(0)]
    try:
        return command(argv)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except RunAborted as exc:
        print(f"{PROG}: run stopped: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:  # Ctrl-C outside the batch (validation, publishing)
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug of ours: one line for the user, the traceback in a file
        import tempfile
        import traceback

        fd, path = tempfile.mkstemp(prefix="tracecore-perf-crash-", suffix=".txt")
        with open(fd, "w") as fh:
            traceback.print_exc(file=fh)
        print(f"{PROG}: internal error: {type(exc).__name__}: {exc} (traceback in {path}; please report it)", file=sys.stderr)
        return 3
