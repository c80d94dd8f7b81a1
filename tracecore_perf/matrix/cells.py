"""What both backends share about one cell: its run's options or command line, and what its
published run says (status, stamp, figures, host fingerprint)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import msgspec

from tracecore_perf.errors import ExitCode, UsageError
from tracecore_perf.matrix.models import Cell, CellOutcome, CellStatus
from tracecore_perf.published import PublishedRun, locate
from tracecore_perf.settings import RunSettings

SUPERSEDED = ".superseded"  # earlier attempts of rerun cells, beside the cells (no cell name starts with a dot)


def run_options(cell: Cell, output_dir: Path, output_cap: int):
    """The cell as the harness's ``RunOptions`` (the local backend)."""
    from tracecore_perf.run import harness
    from tracecore_perf.run.spawn import default_python

    return harness.RunOptions(
        settings=msgspec.structs.replace(cell.settings, python=cell.settings.python or default_python()),
        output_dir=str(output_dir),
        scenario=list(cell.rows),
        output_cap=output_cap,
        stamp_suffix=cell.number,
    )


def run_argv(cell: Cell, output_dir: Path, scenario_file: Path) -> list[str]:
    """The cell as ``python -m tracecore_perf`` flags (the Ray backend runs it on a node)."""
    argv = ["run"]
    for name in RunSettings.__struct_fields__:  # a flag per setting, as run_parser makes them
        value, flag = getattr(cell.settings, name), "--" + name.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is not None and value is not False:
            argv += [flag, repr(value) if isinstance(value, float) else str(value)]
    argv += [
        "--scenario", str(scenario_file),
        "--output-dir", str(output_dir),
        "--json", "--no-progress", "--log-format", "json",
    ]  # fmt: skip
    if cell.number:
        argv += ["--stamp-suffix", str(cell.number)]
    return argv


def published(cell_dir: Path) -> PublishedRun | None:
    """The cell's published run, if its folder holds exactly one."""
    if not cell_dir.is_dir() or not any(cell_dir.glob("perf-manifest-*.json")):
        return None
    try:
        return locate(cell_dir)
    except UsageError:
        return None


def status_of(exit_code: int | None, run_status: str | None) -> CellStatus:
    if run_status is None:
        return "failed"
    if run_status == "interrupted" or exit_code in (ExitCode.INTERRUPTED, ExitCode.TERMINATED):
        return "interrupted"
    if run_status == "tainted" or exit_code == ExitCode.TAINTED:
        return "tainted"
    if exit_code == 3:
        return "failed"
    return "ok" if exit_code == 0 else "episodes_failed"


def fill(outcome: CellOutcome, run: PublishedRun, exit_code: int | None = None) -> CellOutcome:
    """The published run's figures into the cell's outcome. Without an exit code (a cell found
    on disk), it is worked out from the summary as the run command would."""
    summary, manifest = run.summary(), run.manifest()
    if exit_code is None:
        exit_code = 0 if summary.failure_count == 0 and summary.summary.total == manifest.settings.episodes else 1
    outcome.stamp = run.stamp
    outcome.exit_code = exit_code
    outcome.status = status_of(exit_code, summary.status)
    outcome.machine_id = manifest.machine_id()
    outcome.hostname = manifest.host.hostname
    outcome.throughput_eps = summary.throughput_eps
    outcome.p50_wall_clock_s = summary.summary.p50_wall_clock_s
    outcome.p95_wall_clock_s = summary.summary.p95_wall_clock_s
    outcome.failure_count = summary.failure_count
    outcome.episodes = summary.episodes
    outcome.error = None
    return outcome


def set_aside(matrix_dir: Path, name: str) -> Path | None:
    """Move an earlier, unfinished attempt of a cell out of its folder before it runs again."""
    cell_dir = matrix_dir / name
    if not cell_dir.exists() or not any(cell_dir.iterdir()):
        return None
    root = matrix_dir / SUPERSEDED
    root.mkdir(exist_ok=True)
    n = 1
    while (root / f"{name}-{n}").exists():
        n += 1
    target = root / f"{name}-{n}"
    cell_dir.rename(target)
    return target


def pack(folder: Path, archive: Path) -> None:
    """A cell's output folder (run directory and published artifacts) as one gzip'd tar."""
    with tarfile.open(archive, "w:gz", compresslevel=3) as tar:
        for child in sorted(folder.iterdir()):
            tar.add(child, arcname=child.name)


def unpack(data: bytes, target: Path) -> None:
    import io

    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(target, filter="data")  # members stay inside target, no devices or links out
