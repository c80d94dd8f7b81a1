"""The matrix's answer: ``perf-matrix-<stamp>.json`` in the matrix folder, the comparisons
between cells that share their scenario rows, and the console table."""

from __future__ import annotations

from pathlib import Path

import msgspec

from tracecore_perf.errors import UsageError
from tracecore_perf.escape import log_line
from tracecore_perf.files import write_atomic
from tracecore_perf.matrix import cells as cellio
from tracecore_perf.matrix.models import COMPARABLE, Cell, CellComparison, CellOutcome, MatrixResult
from tracecore_perf.verdicts.models import ratio_text

PLAN = "matrix-plan.json"


def matrix_path(matrix_dir: Path, stamp: str) -> Path:
    return matrix_dir / f"perf-matrix-{stamp}.json"


def write(matrix_dir: Path, result: MatrixResult) -> Path:
    path = matrix_path(matrix_dir, result.stamp)
    write_atomic(path, msgspec.json.format(msgspec.json.encode(result), indent=2))
    return path


def read(matrix_dir: Path, stamp: str) -> MatrixResult | None:
    path = matrix_path(matrix_dir, stamp)
    if not path.is_file():
        return None
    try:
        return msgspec.json.decode(path.read_bytes(), type=MatrixResult)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def comparisons(cells: list[Cell], outcomes: dict[str, CellOutcome], matrix_dir: Path) -> list[CellComparison]:
    """``compare`` for every pair of published cells with the same scenario rows, the earlier
    cell in the file as the baseline. Cells under different interpreters are compared as
    ``ab`` compares its sides (the interpreter is what they vary); ``different_machine_class``
    marks pairs whose machines differ. A pair compare refuses (set up differently: workers,
    isolation, strict spec) is kept with compare's own line in ``refused``."""
    from tracecore_perf.verdicts.compare import compare_runs

    found = []
    for i, base in enumerate(cells):
        for cur in cells[i + 1 :]:
            if [tuple(msgspec.structs.astuple(r)) for r in base.rows] != [tuple(msgspec.structs.astuple(r)) for r in cur.rows]:
                continue
            if any(outcomes.get(c.name) is None or outcomes[c.name].status not in COMPARABLE for c in (base, cur)):
                continue  # an interrupted or failed cell's figures cover only what it got to
            base_run, cur_run = cellio.published(matrix_dir / base.name), cellio.published(matrix_dir / cur.name)
            if base_run is None or cur_run is None:
                continue
            base_m, cur_m = base_run.manifest(), cur_run.manifest()
            entry = CellComparison(
                baseline=base.name,
                current=cur.name,
                different_machine_class=base_m.machine_id() != cur_m.machine_id(),
                machine_ids=[base_m.machine_id(), cur_m.machine_id()],
            )
            interpreters_differ = (base_m.interpreter.executable, base_m.interpreter.tracecore_version) != (
                cur_m.interpreter.executable,
                cur_m.interpreter.tracecore_version,
            )
            try:
                # cells that name different interpreters are an experiment across installs (TraceCore
                # releases, Pythons): each environment difference is named in the comparison's warnings
                comparison = compare_runs(
                    base_run, cur_run, interpreter_ab=interpreters_differ, allow_env_difference=interpreters_differ
                )
            except UsageError as exc:  # compare refuses runs set up differently: said as such
                entry.refused = str(exc)
            else:
                entry.comparison = comparison
                entry.verdict = str(comparison.verdict)
                entry.regression = any(row.regression for row in comparison.rows)
                entry.ok = comparison.ok and not entry.regression
            found.append(entry)
    return found


def _clock(iso: str | None) -> str:
    return iso[11:19] if iso else "-"


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _comparison_line(comp: CellComparison) -> str:
    """One comparison between cells: its verdict and its worst row's ratio and interval; a
    regression in capitals, first on the line."""
    mark = " [DIFFERENT MACHINES]" if comp.different_machine_class else ""
    head = f"compare {comp.baseline} -> {comp.current}"
    if comp.refused:
        return f"{head}: refused: {comp.refused}{mark}"
    rows = [row for row in comp.comparison.rows if row.ratio.value is not None] if comp.comparison else []
    if not rows:
        return f"{head}: {comp.verdict}{mark}"
    worst = max(rows, key=lambda row: (row.regression, row.ratio.value))
    said = f"{worst.agent} on {worst.task_ref} {ratio_text(worst.ratio.value, worst.ratio.low, worst.ratio.high)}"
    metric = comp.comparison.metric if comp.comparison else "?"
    if comp.regression:
        return f"REGRESSION {head}: {comp.verdict}; worst {said} ({metric}){mark}"
    return f"{head}: {comp.verdict}; worst {said} ({metric}){mark}"


def table(result: MatrixResult) -> str:
    """The console table: one line per cell, then one per comparison. Cell names, errors and
    the agents a comparison names are data: each line is an ``escape.log_line``."""
    header = ("cell", "status", "node", "started", "finished", "eps", "p50 s", "p95 s", "failed", "stamp")
    rows = [
        (
            c.name,
            c.status,
            (c.node or "-")[:8],
            _clock(c.started_at),
            _clock(c.finished_at),
            _num(c.throughput_eps, 1),
            _num(c.p50_wall_clock_s),
            _num(c.p95_wall_clock_s),
            "-" if c.failure_count is None else str(c.failure_count),
            c.stamp or "-",
        )
        for c in result.cells
    ]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]
    for c in result.cells:
        if c.error:
            lines.append(f"{c.name}: {c.error}")
    for comp in result.comparisons:
        lines.append(_comparison_line(comp))
    regressed = result.regressions()
    if regressed:
        lines.append(f"REGRESSION in {len(regressed)} of {len(result.comparisons)} comparisons between cells")
    wall = f", {result.wall_s:.1f} s" if result.wall_s is not None else ""
    nodes = f" on {len(result.nodes)} node{'s' if len(result.nodes) != 1 else ''}" if result.nodes else ""
    ok = sum(c.status == "ok" for c in result.cells)
    lines.append(f"matrix {result.stamp}: {ok}/{len(result.cells)} cells ok{nodes}{wall}")
    return "\n".join(map(log_line, lines))
