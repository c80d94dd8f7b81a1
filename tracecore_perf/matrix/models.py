"""The contracts of the matrix stage: the file as written (``MatrixFile``), a cell ready to run
(``Cell``), what a cell's run came to (``CellOutcome``), comparisons between cells that share
their scenario rows (``CellComparison``) and the whole answer (``MatrixResult``, published as
``perf-matrix-<stamp>.json``)."""

from __future__ import annotations

import typing
from typing import Annotated, Literal

import msgspec

from tracecore_perf.models import ScenarioRow
from tracecore_perf.settings import RunSettings
from tracecore_perf.verdicts.models import Comparison

MATRIX_FORMAT_VERSION = 1

CellName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]

# ok: published, every episode succeeded; episodes_failed: published, some episode failed;
# tainted: published with tampered evidence; interrupted: stopped by Ctrl-C/SIGTERM (resumable);
# failed: no published run (node lost beyond the retries, the node refused the cell, the run
# had to stop); pending: not started.
CellStatus = Literal["ok", "episodes_failed", "tainted", "interrupted", "failed", "pending"]
DONE_STATUSES = ("ok", "episodes_failed", "tainted")
COMPARABLE = ("ok", "episodes_failed")  # cells whose figures cover the whole run (compare takes them)


# The file's keys (its top level: defaults for every cell; each cell's own): every run setting
# (settings.RunSettings, with its bounds), each optional, and the rows: a scenario file (as
# --scenario) or the rows inline. Made from RunSettings, so a setting added there is a key here.
_OPTIONAL_SETTINGS = [(name, hint | None, None) for name, hint in typing.get_type_hints(RunSettings, include_extras=True).items()]
CellSettings = msgspec.defstruct(
    "CellSettings",
    [*_OPTIONAL_SETTINGS, ("scenario", str | None, None), ("rows", list[ScenarioRow] | None, None)],
    kw_only=True,
    forbid_unknown_fields=True,
    omit_defaults=True,
    module=__name__,
)


class CellEntry(CellSettings, kw_only=True, forbid_unknown_fields=True):
    name: CellName


class MatrixFile(CellSettings, kw_only=True, forbid_unknown_fields=True):
    cells: list[CellEntry]


class Cell(msgspec.Struct, kw_only=True):
    """One cell, every setting resolved (cell, else the file's default, else the run's); its
    ``settings.python`` None: the interpreter running the harness (on Ray: the node's own)."""

    name: str
    settings: RunSettings
    rows: list[ScenarioRow]
    scenario_source: str  # "inline", "default" or the scenario file as given
    number: int = 0  # 1-based place in the file: the suffix of the cell's stamp (distinct stamps)


class MatrixPlan(msgspec.Struct, kw_only=True):
    source: str  # the matrix file as given
    cells: list[Cell]
    cwd: str  # where relative agent paths resolve (the directory the matrix was started from)


class CellOutcome(msgspec.Struct, kw_only=True):
    name: str
    status: CellStatus = "pending"
    stamp: str | None = None  # the cell's run stamp
    exit_code: int | None = None  # the run's exit code
    node: str | None = None  # Ray node id, or "local"
    hostname: str | None = None
    machine_id: str | None = None  # the machine the cell ran on (Manifest.machine_id)
    started_at: str | None = None  # ISO-8601 UTC
    finished_at: str | None = None
    attempt: int | None = None  # Ray: the task attempt that produced it (1 = no retry)
    throughput_eps: float | None = None
    p50_wall_clock_s: float | None = None
    p95_wall_clock_s: float | None = None
    failure_count: int | None = None
    episodes: int | None = None
    error: str | None = None  # why the cell has no published run
    path: str | None = None  # the cell's folder, relative to the matrix folder


class CellComparison(msgspec.Struct, kw_only=True):
    """``compare`` of two cells with the same scenario rows: the earlier cell in the file is
    the baseline. ``refused`` holds compare's own refusal (runs set up differently)."""

    baseline: str
    current: str
    verdict: str | None = None
    ok: bool | None = None
    refused: str | None = None
    regression: bool = False  # a scenario row of ``current`` is significantly slower than the margin allows
    different_machine_class: bool = False  # the cells ran on different hardware (models.machine_id)
    machine_ids: list[str | None] = []  # each cell's machine id
    comparison: Comparison | None = None  # compare's whole answer: per row ratio, interval, p-value, metric


class MatrixResult(msgspec.Struct, kw_only=True):
    ok: bool
    stamp: str
    backend: Literal["local", "ray"]
    address: str | None
    source: str
    started_at: str
    finished_at: str | None
    wall_s: float | None
    nodes: list[str]
    cells: list[CellOutcome]
    comparisons: list[CellComparison] = []
    format_version: int = MATRIX_FORMAT_VERSION

    def regressions(self) -> list[CellComparison]:
        """The comparisons in which a cell is significantly slower than an earlier one."""
        return [comparison for comparison in self.comparisons if comparison.regression]
