"""``tracecore-perf [run] [flags]``: run episodes, each in its own process, and publish the
evidence; ``--resume RUN_DIR`` finishes an interrupted run."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from tracecore_perf import __version__, defaults
from tracecore_perf.cli.args import (
    COMMANDS,
    PROG,
    Parser,
    add_run_settings,
    check_output_path,
    non_negative_int,
    positive_int,
    run_settings_from,
)
from tracecore_perf.errors import ExitCode, UsageError, stop_on_sigterm
from tracecore_perf.escape import json as escape_json
from tracecore_perf.escape import log_line

_UNSET = object()


def _commands_text() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {line}" for name, line in COMMANDS.items()]
    return (
        "commands:\n"
        + "\n".join(lines)
        + f"\n\nWithout a command, {PROG} runs a run (the flags below).\n"
        + f"`{PROG} COMMAND --help` shows a command's flags."
    )


def run_parser() -> argparse.ArgumentParser:
    """The parser of ``run``, which is also the top-level one. Its ``run_parameters`` are the
    flags recorded in the run's manifest: ``--resume`` takes them from there and refuses them."""
    parser = Parser(
        prog=PROG,
        usage=f"{PROG} [run] [flags] | {PROG} {{{','.join(name for name in COMMANDS if name != 'run')}}} ...",
        description="Run TraceCore episodes, each in its own process, and publish perf evidence.\n\n" + _commands_text(),
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    group = parser.add_argument_group(
        "run parameters", "recorded in the run's manifest: --resume takes them from there and refuses them"
    )
    # the run's settings (RunSettings, a flag each), then where its output goes and its rows
    names = add_run_settings(group)
    names.append(
        group.add_argument(
            "--output-dir", metavar="DIR", default=defaults.OUTPUT_DIR, help="where run directories and artifacts go"
        ).dest
    )
    names.append(
        group.add_argument(
            "--scenario",
            type=Path,
            metavar="FILE",
            help="TOML or JSON file of rows with agent, task_ref, seed (default: the built-in scenario)",
        ).dest
    )
    parser.add_argument(
        "--output-cap",
        metavar="BYTES",
        type=positive_int,
        default=defaults.OUTPUT_CAP_BYTES,
        help="bytes of each episode's stdout+stderr kept",
    )
    parser.add_argument(
        "--resume", type=Path, metavar="RUN_DIR", help="finish an interrupted run from its run directory (default: a new run)"
    )
    parser.add_argument(
        "--report", action="store_true", help="also write charts and perf-report-<stamp>.html next to the artifacts"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help='print {"ok", "stamp", "machine_id", "python", "tracecore", "artifacts", "summary"} instead of the table',
    )
    parser.add_argument("--log-format", choices=["console", "json"], default="console", help="stderr log format")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    parser.add_argument("--check", action="store_true", help="check the run against the thresholds when it ends (see `check`)")
    parser.add_argument(
        "--history",
        nargs="?",
        type=Path,
        const=Path(defaults.HISTORY_DB),
        metavar="PATH",
        help=f"add the run to the history database once it is published (PATH default: {defaults.HISTORY_DB}; see `history`)",
    )
    # A matrix cell run on a Ray node gets its cell's number as its stamp's suffix, so cells
    # that start in the same second keep distinct stamps (history knows runs by stamp).
    parser.add_argument("--stamp-suffix", type=non_negative_int, default=0, help=argparse.SUPPRESS)
    parser.set_defaults(run_parameters=names)
    return parser


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The flags, and which run parameters were given (in the parser's order)."""
    parser = run_parser()
    names = parser.get_default("run_parameters")
    # a run parameter left unset keeps the marker: argparse fills in only missing attributes
    args = parser.parse_args(argv, namespace=argparse.Namespace(**dict.fromkeys(names, _UNSET)))
    given = [name for name in names if getattr(args, name) is not _UNSET]
    for name in names:
        if getattr(args, name) is _UNSET:
            setattr(args, name, parser.get_default(name))
    return args, given


def main(argv: list[str]) -> int:
    from tracecore_perf.run.spawn import default_isolation, default_python, prestart

    stop_on_sigterm()  # outside the batch, SIGTERM stops the run as Ctrl-C does: cleaned up, 143
    args, given = parse(argv)
    # a relative interpreter path is taken from here: episodes and checks run in other folders
    args.python = os.path.abspath(args.python) if args.python else default_python()
    args.isolation = args.isolation or default_isolation()
    thresholds, scenario = check_input(args, given)
    # A new run's zygote starts now, before the harness's imports below, so TraceCore's
    # imports in it overlap ours; the run adopts it, or it is discarded unused.
    zygote = None if args.resume is not None else prestart(args.python, args.isolation, args.instructions)
    try:
        return _run(args, thresholds, scenario, zygote)
    finally:
        if zygote is not None:
            zygote.discard()


def check_input(args: argparse.Namespace, given: list[str]):
    """Every check of the input that needs no episode interpreter, before any process starts:
    bad input is one line and exit 2. Returns the thresholds (for --check/--report) and the
    rows of the ``--scenario`` file (None without one, and on --resume)."""
    from tracecore_perf.run.checks import check_settings

    thresholds = None
    if args.check or args.report:  # the report's verdict reads the same thresholds
        from tracecore_perf.verdicts.check import load_thresholds

        thresholds = load_thresholds()
    if args.history is not None:  # a database history would refuse, or a path no output may take
        from tracecore_perf.history.store import preflight

        check_output_path("--history", args.history, "history")
        preflight(args.history)
    if args.resume is not None:
        if given:
            raise UsageError(f"--resume takes the run's parameters from its manifest; drop --{given[0].replace('_', '-')}")
        return thresholds, None
    scenario = None  # the built-in one, taken after the zygote has started (it needs msgspec)
    if args.scenario:
        from tracecore_perf.run.scenario import load_scenario

        scenario = load_scenario(args.scenario)
    check_output_path("--output-dir", args.output_dir, "runs")  # never inside another run's directory
    check_settings(args, Path(args.output_dir))  # the harness takes the run as checked (input_checked)
    return thresholds, scenario


def _run(args: argparse.Namespace, thresholds, scenario, zygote) -> int:
    from tracecore_perf.run.hostinfo import BusyProbe

    # The quiet-host check's window opens as the run starts: now, with the zygote running.
    busy = BusyProbe(own_processes=(zygote.process.pid,) if zygote else ())
    from tracecore_perf.run import harness
    from tracecore_perf.run.console import print_summary
    from tracecore_perf.run.logs import configure
    from tracecore_perf.run.scenario import DEFAULT_SCENARIO

    configure(args.log_format)
    show_progress = not (args.no_progress or args.json)
    from tracecore_perf.run import orchestrator

    # what a second Ctrl-C, which leaves at once, prints: the exact command, as every stop does
    orchestrator.resume_hint = lambda run_dir: resume_command(run_dir, args)
    if args.resume is not None:
        outcome = harness.resume(args.resume, output_cap=args.output_cap, show_progress=show_progress)
        if outcome.already_published:
            print(f"{PROG}: run already published, nothing to resume: {args.resume}", file=sys.stderr)
            return outcome.exit_code
    else:
        options = harness.RunOptions(
            settings=run_settings_from(args),
            output_dir=args.output_dir,
            scenario=scenario or list(DEFAULT_SCENARIO),
            output_cap=args.output_cap,
            stamp_suffix=args.stamp_suffix,
        )
        outcome = harness.start(options, show_progress=show_progress, zygote=zygote, busy=busy, input_checked=True)

    if outcome.stopped is not None:
        print(
            log_line(
                f"{PROG}: run stopped: {outcome.stopped} (rows so far kept in {outcome.run_dir}; "
                f"to finish it: {resume_command(outcome.run_dir, args)})"
            ),
            file=sys.stderr,
        )
    publication = outcome.publication
    if publication is None:
        if outcome.exit_code in (ExitCode.INTERRUPTED, ExitCode.TERMINATED):  # before or after the batch
            print(f"{PROG}: interrupted; to finish the run: {resume_command(outcome.run_dir, args)}", file=sys.stderr)
        return outcome.exit_code
    artifacts = dict(publication.artifacts)
    exit_code = outcome.exit_code
    from tracecore_perf.published import PublishedRun

    # --report, --history and --check read the run once, between them
    run = PublishedRun.just_published(publication.stamp, publication.artifacts, publication.manifest, publication.summary)
    verdict = _verdict(run, thresholds) if args.check else None
    if args.report:
        # Imported only here: a run without --report never loads matplotlib.
        from tracecore_perf.report.page import write_report

        try:
            written = write_report(run, thresholds=thresholds, verdict=verdict)
            artifacts["report"] = str(written.report)
        except Exception as exc:  # the run is published whatever happens to its report
            print(log_line(f"{PROG}: report not written: {type(exc).__name__}: {exc}"), file=sys.stderr)
            exit_code = exit_code or 1
    if args.history is not None:
        try:
            added = add_to_history(run, args.history)
            artifacts["history"] = str(args.history)
            if not args.json:
                print(f"{PROG}: history: {publication.stamp} {'added to' if added else 'already in'} {args.history}")
        except Exception as exc:  # the run is published whatever happens to its history entry
            print(log_line(f"{PROG}: history not updated: {exc}"), file=sys.stderr)
            exit_code = exit_code or 1
    output_dir = Path(outcome.run_dir).parent
    if args.json:
        import msgspec

        payload = {
            "ok": exit_code == 0,
            "stamp": publication.stamp,
            "machine_id": publication.manifest.machine_id(),
            "python": publication.manifest.interpreter.python_version,
            "tracecore": publication.manifest.interpreter.tracecore_version,
            "artifacts": artifacts,
            "summary": msgspec.to_builtins(publication.summary),
        }
        check_code = 0 if verdict is None else after_run(verdict, output_dir, payload)
        print(escape_json(json.dumps(payload, indent=2)))
    else:
        print_summary(publication.summary, publication.manifest, artifacts, outcome.run_dir)
        check_code = 0 if verdict is None else after_run(verdict, output_dir)
    line = failures_line(publication.summary.failure_count, publication.summary.failure_reasons)
    if line:
        print(log_line(f"{PROG}: {line} (one line per episode in {Path(outcome.run_dir) / 'harness.log'})"), file=sys.stderr)
    if outcome.exit_code in (ExitCode.INTERRUPTED, ExitCode.TERMINATED):
        print(f"{PROG}: interrupted; to finish the run: {resume_command(outcome.run_dir, args)}", file=sys.stderr)
    return exit_code or check_code


def _verdict(run, thresholds):
    """``run --check``: the run just published against the thresholds (``check``'s verdict)."""
    from tracecore_perf.verdicts.check import evaluate

    return evaluate(run, thresholds)


def after_run(verdict, output_dir: Path, json_payload: dict | None = None) -> int:
    """``run --check``: say the verdict on the run just published. With ``--json`` it goes into
    the run's JSON payload under ``check``; otherwise it is printed as text."""
    from tracecore_perf.cli.output import emit

    if json_payload is not None:
        import msgspec

        json_payload["check"] = msgspec.to_builtins(verdict)
    else:
        emit("text", verdict, output_dir, stream=sys.stdout)
    return 0 if verdict.ok else 1


def add_to_history(run, db: Path) -> bool:
    """``run --history``: add the run just published (a published.PublishedRun); False when it
    was already there."""
    from tracecore_perf.history.store import figures_of, open_store

    entry = figures_of(run)
    with open_store(db, write=True, create_dir=True) as store:
        return store.add([entry])[0]


def failures_line(count: int, reasons: dict[str, int], shown: int = 3, width: int = 100) -> str | None:
    """One line for the console: how many episodes failed and the commonest reasons (the
    caller prints it as ``escape.log_line``)."""
    if not count:
        return None
    top = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    parts = [f"{reason if len(reason) <= width else reason[: width - 3] + '...'} (x{n})" for reason, n in top[:shown]]
    if len(top) > shown:
        parts.append(f"{len(top) - shown} more reason(s)")
    return f"{count} episode{'s' if count != 1 else ''} failed: " + "; ".join(parts)


def resume_command(run_dir: str, args: argparse.Namespace) -> str:
    """The command that finishes this run, exactly: this interpreter, the run directory, and
    the flags given that ``--resume`` accepts."""
    argv = [sys.executable, "-m", "tracecore_perf", "--resume", str(run_dir)]
    if args.output_cap != defaults.OUTPUT_CAP_BYTES:
        argv += ["--output-cap", str(args.output_cap)]
    argv += [flag for flag in ("--report", "--check", "--json") if getattr(args, flag[2:])]
    if args.history is not None:
        argv += ["--history", str(args.history)]
    if args.log_format != "console":
        argv += ["--log-format", args.log_format]
    return shlex.join(argv)
