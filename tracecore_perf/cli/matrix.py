"""``tracecore-perf matrix FILE [--ray ADDRESS] [--output-dir DIR] [--json]``: many ordinary
runs (cells) from one TOML file, here one after another or one per quiet host of a Ray
cluster; ``--resume MATRIX_DIR`` reruns the cells without a finished published run.

Exit codes: 0 every cell ran and every episode succeeded, 1 some cell failed or had failed
episodes (or, with ``--fail-on regression``, a cell regressed against an earlier one), 2 bad
input (one line, nothing written, no cell started; ``--ray`` without Ray installed), 3 no Ray
cluster answers at the address, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import sys
from pathlib import Path

import msgspec

from tracecore_perf import defaults
from tracecore_perf.cli.args import PROG, Parser, check_output_path, non_negative_int
from tracecore_perf.errors import ClusterUnreachable, ExitCode, UsageError
from tracecore_perf.escape import json as escape_json
from tracecore_perf.escape import log_line


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog=f"{PROG} matrix",
        description="Run a matrix of runs (cells) from a TOML file: optional top-level defaults (any of the run's settings: "
        "episodes, workers, timeout, strict_spec, compress, isolation, python, keep_runs, sample_interval, warmup, instructions, "
        "scenario = FILE or rows = [{agent, task_ref, seed}, ...]), then [[cells]], each with a unique name and any of "
        "the same settings. Each cell is an ordinary run under DIR/matrix-<stamp>/<cell>/.",
    )
    p.add_argument("file", nargs="?", type=Path, metavar="FILE", help="the matrix TOML file")
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run the cells on the Ray cluster at ADDRESS (HOST:PORT of its head; auto: $RAY_ADDRESS), one per node "
        "with a perf_host resource (default: here, one after another)",
    )
    p.add_argument("--output-dir", type=Path, metavar="DIR", default=Path(defaults.OUTPUT_DIR), help="where matrix-<stamp>/ goes")
    p.add_argument(
        "--resume",
        type=Path,
        metavar="MATRIX_DIR",
        help="rerun the cells of MATRIX_DIR without a finished published run (default: a new matrix)",
    )
    p.add_argument(
        "--retries",
        type=non_negative_int,
        metavar="N",
        help="on Ray: times a cell is run again elsewhere when its node or worker is lost (default: 2)",
    )
    p.add_argument(
        "--fail-on",
        choices=["regression", "never"],
        default="never",
        help="regression: exit 1 when a cell is significantly slower than an earlier cell with the same rows",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help='print {"ok", "stamp", "cells": [...], "comparisons": [...]} instead of the table (each comparison with '
        "compare's numbers: per row metric, ratio, interval, p-value)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    return p


@contextlib.contextmanager
def _stdout_to_stderr():
    """While the cells run, whatever else writes to stdout (Ray's driver prints its task
    retries there, from threads of its own) goes to stderr: stdout is the table or the JSON."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _say(line: str) -> None:
    print(log_line(f"{PROG} matrix: {line}"), file=sys.stderr)


def payload(outcome, fail_on_regression: bool = False) -> dict:
    """The ``--json`` answer: each cell with its summary (the published one) and ISO-8601 UTC times."""
    from tracecore_perf.matrix import cells as cellio

    cells = []
    for cell in outcome.result.cells:
        run = cellio.published(outcome.matrix_dir / cell.name) if cell.stamp else None
        cells.append(
            {
                "name": cell.name,
                "stamp": cell.stamp,
                "status": cell.status,
                "node": cell.node,
                "started_at": cell.started_at,
                "finished_at": cell.finished_at,
                "summary": msgspec.to_builtins(run.summary()) if run is not None else None,
                "machine_id": cell.machine_id,
                "error": cell.error,
                "path": str(outcome.matrix_dir / cell.name),
            }
        )
    return {
        "ok": outcome.result.ok and not (fail_on_regression and outcome.result.regressions()),
        "stamp": outcome.result.stamp,
        "cells": cells,
        "matrix": str(outcome.path),
        "comparisons": [msgspec.to_builtins(c) for c in outcome.result.comparisons],
    }


def _run(args: argparse.Namespace, say, show_progress: bool):
    from tracecore_perf.matrix import plan as matrix_plan
    from tracecore_perf.matrix import session

    if args.resume is not None:
        return session.resume(args.resume, address=args.ray, retries=args.retries, say=say, show_progress=show_progress)
    plan = matrix_plan.load(args.file)
    return session.start(
        plan, output_dir=args.output_dir, address=args.ray, retries=args.retries, say=say, show_progress=show_progress
    )


def main(argv: list[str]) -> int:
    from tracecore_perf.matrix import results
    from tracecore_perf.run.logs import configure

    args = parser().parse_args(argv)
    if args.resume is None and args.file is None:
        raise UsageError("give the matrix FILE (or --resume MATRIX_DIR)")
    if args.resume is not None and args.file is not None:
        raise UsageError("--resume takes the cells from the matrix folder; drop FILE")
    if args.retries is not None and args.ray is None:
        raise UsageError("--retries is for --ray (here a cell runs once)")
    check_output_path("--output-dir", args.output_dir, "runs")
    configure("console", level=logging.WARNING)
    show_progress = not (args.no_progress or args.json)
    say = (lambda line: None) if args.json else _say
    try:
        with _stdout_to_stderr():
            outcome = _run(args, say, show_progress)
    except ClusterUnreachable as exc:
        print(log_line(f"{PROG}: error: {exc}"), file=sys.stderr)
        return ExitCode.STOPPED
    fail_on_regression = args.fail_on == "regression"
    if args.json:
        print(escape_json(json.dumps(payload(outcome, fail_on_regression), indent=2)))
    else:
        print(results.table(outcome.result))
        print(f"matrix: {outcome.path}")
    if outcome.exit_code != 0 and any(c.status not in ("ok", "episodes_failed", "tainted") for c in outcome.result.cells):
        again = [sys.executable, "-m", "tracecore_perf", "matrix", "--resume", str(outcome.matrix_dir)]
        if args.ray:
            again += ["--ray", args.ray]
        print(f"{PROG}: cells without a finished run; to rerun only them: {shlex.join(again)}", file=sys.stderr)
    if outcome.exit_code == ExitCode.OK and fail_on_regression and outcome.result.regressions():
        return ExitCode.FAILED
    return outcome.exit_code
