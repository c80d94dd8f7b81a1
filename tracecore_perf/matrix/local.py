"""The local backend: cells one after another in this process, each an ordinary run through
``harness.start`` (or ``harness.resume`` for a cell an earlier attempt left unfinished), never
two at once: they would disturb each other's figures."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from tracecore_perf import defaults
from tracecore_perf.errors import ExitCode, RunAborted, UsageError
from tracecore_perf.matrix import cells as cellio
from tracecore_perf.matrix.models import Cell, CellOutcome
from tracecore_perf.run.rundir import MANIFEST, utc_now

NODE = "local"


def preflight(cells: list[Cell], output_dir: Path) -> None:
    """The run's own input checks for every cell, before any starts: the worker bound of this
    host, the output directory, the interpreter, and every agent and task ref loaded by the
    interpreter that will run them (one check per distinct interpreter, isolation, rows and what the
    interpreter's TraceCore must have)."""
    from tracecore_perf.run import harness
    from tracecore_perf.run.checks import check_settings

    seen = set()
    for cell in cells:
        try:
            settings = harness.with_defaults(cell.settings)
            check_settings(settings, output_dir)  # each cell's own bounds (run_cells starts them as checked)
            # what loading the scenario depends on (not episodes, workers or times)
            key = (tuple(cell.rows), settings.python, settings.isolation, settings.instructions, settings.sandbox)
            key += (settings.strict_spec,)
            if key not in seen:
                seen.add(key)
                harness.preflight(list(cell.rows), settings, output_dir, input_checked=True)
        except UsageError as exc:
            raise UsageError(f"cell {cell.name!r}: {exc}") from None


def _unfinished_run(cell_dir: Path) -> Path | None:
    runs = sorted(p for p in cell_dir.glob("run-*") if (p / MANIFEST).is_file()) if cell_dir.is_dir() else []
    return runs[-1] if len(runs) == 1 else None


def run_cells(
    cells: list[Cell],
    matrix_dir: Path,
    on_done: Callable[[CellOutcome], None],
    *,
    say: Callable[[str], None] = lambda line: None,
    show_progress: bool = True,
    output_cap: int = defaults.OUTPUT_CAP_BYTES,
) -> int | None:
    """Run each cell in turn; ``on_done`` gets each outcome as it ends. Returns the exit code
    that stopped the matrix (130/143: interrupted), else None."""
    from tracecore_perf.run import harness

    for number, cell in enumerate(cells, start=1):
        cell_dir = matrix_dir / cell.name
        outcome = CellOutcome(name=cell.name, node=NODE, hostname=socket.gethostname(), path=cell.name)
        outcome.started_at = utc_now().isoformat()
        unfinished = _unfinished_run(cell_dir)
        try:
            result = None
            if unfinished is not None:
                say(f"cell {cell.name} ({number}/{len(cells)}): resuming {unfinished}")
                result = harness.resume(unfinished, output_cap=output_cap, show_progress=show_progress)
                if result.already_published:
                    result = None  # every row there but never published: run the cell afresh
            if result is None:
                cellio.set_aside(matrix_dir, cell.name)
                settings = cell.settings
                say(f"cell {cell.name} ({number}/{len(cells)}): {settings.episodes} episodes, {settings.workers} workers")
                options = cellio.run_options(cell, cell_dir, output_cap)
                result = harness.start(options, show_progress=show_progress, input_checked=True)  # preflight held every cell
        except (UsageError, RunAborted) as exc:
            outcome.finished_at = utc_now().isoformat()
            outcome.status, outcome.error = "failed", str(exc)
            on_done(outcome)
            continue
        outcome.finished_at = utc_now().isoformat()
        run = cellio.published(cell_dir)
        if run is not None:
            cellio.fill(outcome, run, result.exit_code)
        else:
            outcome.status, outcome.exit_code = "failed", result.exit_code
            outcome.error = result.stopped or f"the run published nothing (exit {result.exit_code})"
        on_done(outcome)
        if result.exit_code in (ExitCode.INTERRUPTED, ExitCode.TERMINATED):
            return result.exit_code
    return None
