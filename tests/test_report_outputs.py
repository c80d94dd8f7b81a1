"""Where ``report`` writes: beside a run only when the run has no report there yet, so the
report of a published run (the committed baseline's) is never rewritten unasked; anywhere
else only into the folder named with ``--output-dir``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tracecore_perf.cli import main

from conftest import REPO, harness

BASELINE = REPO / "deliverables" / "perf" / "baseline"  # published with its report and charts
SLICE = REPO / "deliverables" / "perf" / "baseline-slice"  # published without


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def _state(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file of ``folder``: its bytes, modification time and inode (a file replaced by a
    rename has a new inode even with the same bytes)."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_ino) for p in sorted(folder.iterdir())}


def test_the_committed_baseline_has_its_report():
    assert len(list(BASELINE.glob("perf-report-*.html"))) == 1
    assert len(list(BASELINE.glob("perf-chart-*"))) == 12


def test_report_of_a_run_that_has_its_report_rewrites_nothing(tmp_path, capsys):
    run = _copy(BASELINE, tmp_path / "baseline")
    before = _state(run)
    code = main(["report", str(run)])
    out, err = capsys.readouterr()
    assert code == 2, err
    (line,) = err.strip().splitlines()
    (page,) = run.glob("perf-report-*.html")
    assert line.startswith(f"tracecore-perf: error: {page} exists: ") and "--output-dir DIR" in line
    assert out == ""
    assert _state(run) == before


def test_a_stamp_looked_up_in_the_committed_baseline_rewrites_nothing(tmp_path, capsys):
    run = _copy(BASELINE, tmp_path / "baseline")
    stamp = next(run.glob("perf-manifest-*.json")).stem.removeprefix("perf-manifest-")
    before = _state(run)
    assert main(["report", stamp, "--search-dir", str(run)]) == 2, capsys.readouterr().err
    assert _state(run) == before


@pytest.mark.parametrize("spelled", ["same", "dotted", "linked"])
def test_output_dir_naming_the_runs_own_folder_rewrites_nothing(tmp_path, capsys, spelled: str):
    """--output-dir is for another folder: the run's own, however it is spelled, is refused
    as the default is."""
    run = _copy(BASELINE, tmp_path / "baseline")
    folder = {"same": run, "dotted": run / ".." / run.name, "linked": tmp_path / "link"}[spelled]
    if spelled == "linked":
        folder.symlink_to(run)
    before = _state(run)
    code = main(["report", str(run), "--output-dir", str(folder)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "exists: a run's report is written beside it once" in err or "symbolic link" in err, err
    assert _state(run) == before


@pytest.mark.slow  # renders the charts (matplotlib), a few seconds each
def test_report_writes_beside_a_run_once_then_only_where_it_is_told(tmp_path):
    run = _copy(SLICE, tmp_path / "slice")
    published = _state(run)

    first = harness("report", str(run), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    written = _state(run)
    assert {name: written[name] for name in published} == published  # the published files untouched
    new = sorted(set(written) - set(published))
    assert len(new) == 13 and all(name.startswith(("perf-report-", "perf-chart-")) for name in new), new

    again = harness("report", str(run), "--baseline", str(SLICE), cwd=tmp_path)
    assert again.returncode == 2, again.stderr
    assert _state(run) == written

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    told = harness("report", str(run), "--baseline", str(SLICE), "--output-dir", str(elsewhere), cwd=tmp_path)
    assert told.returncode == 0, told.stderr
    assert _state(run) == written
    assert len(list(elsewhere.glob("perf-report-*.html"))) == 1
    assert len(list(elsewhere.glob("perf-chart-*"))) == 14  # the six charts and the comparison, PNG and SVG
