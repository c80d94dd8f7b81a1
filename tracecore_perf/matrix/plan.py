"""The matrix file: TOML -> validated ``Cell``s. Everything wrong with the file (unknown keys,
duplicate names, bad values, a missing scenario file) is one ``UsageError`` naming the file and
the cell, before any cell starts. Values are held to the run command's own bounds (the Struct
constraints mirror its flag types; the worker bound is ``run.checks.check_workers``);
``local.preflight`` then runs the harness's own ``preflight`` on every cell that runs here.

```toml
episodes = 24            # defaults for every cell: any of the run's settings
workers = 4
rows = [{agent = "agents/toy_agent.py", task_ref = "filesystem_hidden_config@1", seed = 42}]

[[cells]]
name = "current"

[[cells]]
name = "next"
python = "/opt/tracecore-next/bin/python"
```
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import msgspec

from tracecore_perf.compat import tomllib
from tracecore_perf.errors import UsageError, read_input
from tracecore_perf.matrix.models import Cell, CellEntry, MatrixFile, MatrixPlan
from tracecore_perf.run.scenario import DEFAULT_SCENARIO, check_row_count, load_scenario
from tracecore_perf.settings import RunSettings

SETTINGS = RunSettings.__struct_fields__
_PATH = re.compile(r"^\$\.cells\[(\d+)\]\.?(.*)$")


def _where(path: Path, data: dict, detail: str) -> str:
    """msgspec's ``- at `$.cells[1].episodes``` as ``cell 'next': episodes``."""
    text, _, at = detail.rpartition(" - at `")
    at = at.rstrip("`")
    if not text:
        return f"{path}: {detail}"
    match = _PATH.match(at)
    if match:
        index, rest = int(match.group(1)), match.group(2)
        cells = data.get("cells") or []
        name = cells[index].get("name") if index < len(cells) and isinstance(cells[index], dict) else None
        who = f"cell {name!r}" if isinstance(name, str) else f"cell {index + 1}"
        return f"{path}: {who}: {rest + ': ' if rest else ''}{text}"
    return f"{path}: {at.removeprefix('$.') + ': ' if at != '$' else ''}{text}"


def read(path: Path) -> MatrixFile:
    raw = read_input(path, "matrix file")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"matrix file is not valid TOML: {path}: {exc}") from None
    if not data.get("cells"):
        raise UsageError(f"matrix file has no [[cells]]: {path}")
    try:
        return msgspec.convert(data, MatrixFile)
    except msgspec.ValidationError as exc:
        raise UsageError(_where(path, data, str(exc))) from None


def _resolve(entry: CellEntry, top: MatrixFile, path: Path) -> Cell:
    from tracecore_perf.run.spawn import default_isolation

    def pick(name: str, default):
        value = getattr(entry, name)
        if value is None:
            value = getattr(top, name)
        return default if value is None else value

    where = f"{path}: cell {entry.name!r}"
    for name in ("timeout", "sample_interval"):
        value = pick(name, None)
        if value is not None and not math.isfinite(value):
            raise UsageError(f"{where}: {name} must be a finite number of seconds, got {value}")
    # a cell's own scenario or rows replace the file's default of either kind
    if entry.scenario is not None and entry.rows is not None or top.scenario is not None and top.rows is not None:
        raise UsageError(f"{where}: give scenario = FILE or rows = [...], not both")
    if entry.scenario is not None or entry.rows is not None:
        scenario, rows = entry.scenario, entry.rows
    else:
        scenario, rows = top.scenario, top.rows
    if scenario is not None:
        try:
            rows = load_scenario(Path(scenario))
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from None
        source = scenario
    elif rows is not None:
        if not rows:
            raise UsageError(f"{where}: rows is empty")
        check_row_count(len(rows), where)
        source = "inline"
    else:
        rows, source = list(DEFAULT_SCENARIO), "default"
    python = pick("python", None)
    if python is not None and not python.strip():
        raise UsageError(f"{where}: python is empty")
    unset = RunSettings()  # the run's own defaults
    settings = RunSettings(**{name: pick(name, getattr(unset, name)) for name in SETTINGS})
    settings = msgspec.structs.replace(
        settings,
        timeout=float(settings.timeout),
        sample_interval=float(settings.sample_interval),
        isolation=settings.isolation or default_isolation(),
    )
    return Cell(
        name=entry.name,
        settings=settings,
        rows=list(rows),
        scenario_source=source,
    )


def load(path: Path) -> MatrixPlan:
    """Read and check the whole file; raises UsageError on the first problem."""
    top = read(path)
    seen: set[str] = set()
    cells = []
    for entry in top.cells:
        if entry.name.lower() in seen:  # each is a folder: unique on case-insensitive file systems too
            raise UsageError(f"{path}: two cells are named {entry.name!r}; cell names must be unique")
        seen.add(entry.name.lower())
        cells.append(msgspec.structs.replace(_resolve(entry, top, path), number=len(cells) + 1))
    return MatrixPlan(source=str(path), cells=cells, cwd=os.getcwd())
