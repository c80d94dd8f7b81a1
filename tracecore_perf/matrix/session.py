"""A matrix from start to end: check every cell, lay out ``<output>/matrix-<stamp>/``, run the
cells on a backend (here, one after another; or on Ray), compare the cells that share their
scenario rows, write ``perf-matrix-<stamp>.json`` (after every cell, so an interrupted matrix
leaves its state). ``resume`` reruns only the cells without a finished published run."""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec

from tracecore_perf import defaults
from tracecore_perf.errors import UsageError, restore_handlers, stop_on_sigterm
from tracecore_perf.matrix import cells as cellio
from tracecore_perf.matrix import results
from tracecore_perf.matrix.models import DONE_STATUSES, CellOutcome, MatrixPlan, MatrixResult
from tracecore_perf.run.rundir import new_stamp, utc_now

_MATRIX_DIR = re.compile(r"^matrix-(\d{8}T\d{6}Z(?:-\d+)?)$")


class MatrixOutcome(msgspec.Struct):
    exit_code: int
    result: MatrixResult
    matrix_dir: Path
    path: Path  # perf-matrix-<stamp>.json


def _new_matrix_dir(output_dir: Path) -> tuple[str, Path]:
    output_dir.mkdir(parents=True, exist_ok=True)
    base = stamp = new_stamp(output_dir)
    n = 1
    while (output_dir / f"matrix-{stamp}").exists():
        stamp, n = f"{base}-{n}", n + 1
    matrix_dir = output_dir / f"matrix-{stamp}"
    matrix_dir.mkdir()
    return stamp, matrix_dir


def start(
    plan: MatrixPlan,
    *,
    output_dir: Path,
    address: str | None = None,
    retries: int | None = None,
    say: Callable[[str], None] = lambda line: None,
    show_progress: bool = True,
    output_cap: int = defaults.OUTPUT_CAP_BYTES,
) -> MatrixOutcome:
    """Check every cell (here: the run's own preflight; on Ray: the connection, each node
    checks its cells itself), then run them all. Bad input raises UsageError and an address
    where no cluster answers ClusterUnreachable, both before anything is written."""
    from tracecore_perf.run.checks import check_writable_dir

    check_writable_dir(output_dir)
    address = _check(plan.cells, output_dir, address)
    with _leaving(address):
        stamp, matrix_dir = _new_matrix_dir(output_dir)
        (matrix_dir / results.PLAN).write_bytes(msgspec.json.format(msgspec.json.encode(plan), indent=2))
        source = Path(plan.source)
        if source.is_file():
            shutil.copyfile(source, matrix_dir / f"matrix-{stamp}.toml")  # the file as it was run
        outcomes = {cell.name: CellOutcome(name=cell.name, path=cell.name) for cell in plan.cells}
        return _run(plan, stamp, matrix_dir, outcomes, address, retries, say, show_progress, output_cap)


def resume(
    matrix_dir: Path,
    *,
    address: str | None = None,
    retries: int | None = None,
    say: Callable[[str], None] = lambda line: None,
    show_progress: bool = True,
    output_cap: int = defaults.OUTPUT_CAP_BYTES,
) -> MatrixOutcome:
    """Rerun the cells of ``matrix_dir`` that have no finished published run (failed, lost,
    interrupted, never started); the others keep their outcome."""
    match = _MATRIX_DIR.match(matrix_dir.name)
    if not match or not (matrix_dir / results.PLAN).is_file():
        raise UsageError(f"not a matrix folder (matrix-<stamp>/ with {results.PLAN}): {matrix_dir}")
    stamp = match.group(1)
    try:
        plan = msgspec.json.decode((matrix_dir / results.PLAN).read_bytes(), type=MatrixPlan)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UsageError(f"matrix plan unreadable: {matrix_dir / results.PLAN}: {exc}") from None
    previous = results.read(matrix_dir, stamp)
    before = {c.name: c for c in previous.cells} if previous else {}
    outcomes: dict[str, CellOutcome] = {}
    for cell in plan.cells:
        run = cellio.published(matrix_dir / cell.name)
        outcome = before.get(cell.name) or CellOutcome(name=cell.name, path=cell.name)
        if run is not None and outcome.stamp != run.stamp:
            outcome = cellio.fill(CellOutcome(name=cell.name, path=cell.name), run)
        if run is None or outcome.status not in DONE_STATUSES:
            outcome = CellOutcome(name=cell.name, path=cell.name)  # to run again
        outcomes[cell.name] = outcome
    todo = [c for c in plan.cells if outcomes[c.name].status == "pending"]
    if not todo and previous is not None:
        # Nothing to rerun: the record stays as the matrix left it (its times, its wall time).
        say("every cell has a finished run; nothing to resume")
        code = 0 if previous.ok else 1
        return MatrixOutcome(exit_code=code, result=previous, matrix_dir=matrix_dir, path=results.matrix_path(matrix_dir, stamp))
    address = _check(todo, matrix_dir.parent, address)
    with _leaving(address):
        return _run(plan, stamp, matrix_dir, outcomes, address, retries, say, show_progress, output_cap)


def _check(cells: list, output_dir: Path, address: str | None) -> str | None:
    """Here: the run's own preflight for every cell. On Ray: join the cluster (each node
    checks its own cells); returns the address joined."""
    if address is None:
        from tracecore_perf.matrix import local

        local.preflight(cells, output_dir)
        return None
    from tracecore_perf.matrix import ray_backend

    return ray_backend.connect(address)


@contextlib.contextmanager
def _leaving(address: str | None) -> Iterator[None]:
    """Leave the Ray cluster (when one was joined) however the matrix ends."""
    try:
        yield
    finally:
        if address is not None:
            from tracecore_perf.matrix import ray_backend

            ray_backend.shutdown()


def _run(
    plan: MatrixPlan,
    stamp: str,
    matrix_dir: Path,
    outcomes: dict[str, CellOutcome],
    address: str | None,
    retries: int | None,
    say: Callable[[str], None],
    show_progress: bool,
    output_cap: int,
) -> MatrixOutcome:
    t0 = time.monotonic()
    result = MatrixResult(
        ok=False,
        stamp=stamp,
        backend="local" if address is None else "ray",
        address=address,
        source=plan.source,
        started_at=utc_now().isoformat(),
        finished_at=None,
        wall_s=None,
        nodes=[],
        cells=[outcomes[c.name] for c in plan.cells],
    )

    def refresh() -> None:
        result.cells = [outcomes[c.name] for c in plan.cells]
        result.nodes = sorted({c.node for c in result.cells if c.node})
        results.write(matrix_dir, result)

    def on_done(outcome: CellOutcome) -> None:
        outcomes[outcome.name] = outcome
        refresh()

    refresh()
    todo = [c for c in plan.cells if outcomes[c.name].status == "pending"]
    previous_handlers = stop_on_sigterm()
    try:
        if address is None:
            from tracecore_perf.matrix import local

            stopped = local.run_cells(todo, matrix_dir, on_done, say=say, show_progress=show_progress, output_cap=output_cap)
        else:
            from tracecore_perf.matrix import ray_backend

            stopped = ray_backend.run_cells(
                todo, matrix_dir, on_done, cwd=plan.cwd, retries=ray_backend.RETRIES if retries is None else retries, say=say
            )
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM between cells or before a run's own handling
        stopped = getattr(exc, "exit_code", 130)
    finally:
        restore_handlers(previous_handlers)
    result.comparisons = results.comparisons(plan.cells, outcomes, matrix_dir)
    result.finished_at = utc_now().isoformat()
    result.wall_s = round(time.monotonic() - t0, 3)
    result.ok = all(outcomes[c.name].status == "ok" for c in plan.cells)
    refresh()
    code = stopped if stopped is not None else (0 if result.ok else 1)
    return MatrixOutcome(exit_code=code, result=result, matrix_dir=matrix_dir, path=results.matrix_path(matrix_dir, stamp))
