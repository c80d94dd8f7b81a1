"""The evidence check, in-process: the writer's ledgers on a real run directory, tampered
with by the test itself (appended, rewritten, deleted lines; a replaced or deleted file;
strange and missing artifacts), and the ``Integrity`` block that comes out. The same
attacks from inside real episodes are ``test_containment.py``'s (slow)."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from tracecore_perf.models import Integrity
from tracecore_perf.run.integrity import check_artifacts, check_run
from tracecore_perf.run.rundir import RunDir
from tracecore_perf.run.writer import Ledgers, open_ledgers, write_stream

STAMP = "20260101T000000Z"


@pytest.fixture
def run_dir(tmp_path: Path) -> RunDir:
    rd = RunDir(tmp_path / f"run-{STAMP}")
    rd.create()
    return rd


@pytest.fixture
def ledgers(run_dir: RunDir):
    """Ledgers holding four rows and two samples the harness wrote, through the writer."""
    from runs import row
    from test_publish import sample

    opened = open_ledgers(run_dir.series, run_dir.samples)

    async def write() -> None:
        send, receive = anyio.create_memory_object_stream(16)
        async with anyio.create_task_group() as tg:
            tg.start_soon(write_stream, receive, opened)
            async with send:
                for item in [row(i, run_id=f"r{i}") for i in range(4)] + [sample(0.1, 10), sample(0.2, 20)]:
                    await send.send(item)

    anyio.run(write)
    yield opened
    opened.close()


def series_lines(run_dir: RunDir) -> list[bytes]:
    return run_dir.series.read_bytes().splitlines(keepends=True)


def check(run_dir: RunDir, ledgers: Ledgers, **kw) -> Integrity:
    return check_run(run_dir, ledgers, Integrity(), **kw)


def test_untouched_streams_are_clean_and_set_nothing_aside(run_dir, ledgers):
    before = run_dir.series.read_bytes()
    report = check(run_dir, ledgers)
    assert report == Integrity()
    assert run_dir.series.read_bytes() == before and not (run_dir.path / "tainted").exists()


def test_an_appended_line_is_foreign_and_set_aside(run_dir, ledgers):
    forged = b'{"episode": 99, "success": true}\n'
    with run_dir.series.open("ab") as fh:
        fh.write(forged)
    report = check(run_dir, ledgers)
    assert not report.clean and (report.foreign_series_lines, report.missing_series_rows) == (1, 0)
    assert report.problems == ["series.jsonl: 1 lines the harness did not write (set aside)"]
    assert report.set_aside == str(run_dir.path / "tainted")
    assert (run_dir.path / "tainted" / "series.jsonl").read_bytes() == forged
    assert [r.episode_index for r in run_dir.iter_rows()] == [0, 1, 2, 3]


def test_a_rewritten_line_is_foreign_and_the_original_restored(run_dir, ledgers):
    lines = series_lines(run_dir)
    original = lines[1]
    lines[1] = original.replace(b'"success":true', b'"success":false')
    assert lines[1] != original
    run_dir.series.write_bytes(b"".join(lines))
    report = check(run_dir, ledgers)
    assert (report.foreign_series_lines, report.missing_series_rows) == (1, 1)
    assert report.problems == [
        "series.jsonl: 1 lines the harness did not write (set aside)",
        "series.jsonl: 1 rows the harness wrote were missing or altered",
    ]
    assert series_lines(run_dir)[1] == original and all(r.success for r in run_dir.iter_rows())


def test_a_deleted_line_is_missing_and_restored(run_dir, ledgers):
    lines = series_lines(run_dir)
    run_dir.series.write_bytes(b"".join(lines[:2] + lines[3:]))
    report = check(run_dir, ledgers)
    assert (report.foreign_series_lines, report.missing_series_rows) == (0, 1)
    assert report.problems == ["series.jsonl: 1 rows the harness wrote were missing or altered"]
    assert report.set_aside is None
    assert series_lines(run_dir) == lines


def test_a_deleted_file_is_replaced_and_restored(run_dir, ledgers):
    lines = series_lines(run_dir)
    run_dir.series.unlink()
    report = check(run_dir, ledgers)
    assert report.missing_series_rows == 4
    assert report.problems[0] == "series.jsonl was replaced or deleted during the run"
    assert series_lines(run_dir) == lines


def test_tampered_samples_are_counted_apart_from_rows(run_dir, ledgers):
    with run_dir.samples.open("ab") as fh:
        fh.write(b'{"t_s": 1}\n{"t_s": 2}\n')
    report = check(run_dir, ledgers)
    assert (report.foreign_sample_lines, report.missing_samples, report.foreign_series_lines) == (2, 0, 0)
    assert report.problems == ["samples.jsonl: 2 lines the harness did not write (set aside)"]


def test_a_torn_last_line_of_a_full_disk_is_the_harnesss_own(run_dir, ledgers):
    with run_dir.series.open("ab") as fh:
        fh.write(b'{"episode": 5, "epi')
    assert check(run_dir, ledgers, write_failed=True).clean
    assert len(series_lines(run_dir)) == 4


def test_a_torn_last_line_otherwise_is_foreign(run_dir, ledgers):
    with run_dir.series.open("ab") as fh:
        fh.write(b'{"episode": 5, "epi')
    report = check(run_dir, ledgers)
    assert report.foreign_series_lines == 1 and not report.clean


def test_a_taken_tainted_name_gets_a_fresh_folder(run_dir, ledgers):
    (run_dir.path / "tainted").write_text("planted")
    with run_dir.series.open("ab") as fh:
        fh.write(b"{}\n")
    report = check(run_dir, ledgers)
    assert report.set_aside is not None and Path(report.set_aside).name.startswith("tainted-")
    assert (Path(report.set_aside) / "series.jsonl").read_bytes() == b"{}\n"


def test_strange_and_missing_artifacts(run_dir):
    for run_id in ("r0", "r1"):
        (run_dir.runs_root / f"{run_id}.json").write_text("{}")
    (run_dir.runs_root / "forged.json").write_text("{}")
    report = check_artifacts(run_dir, dict.fromkeys(("r0", "r1", "r2")), interrupted=False)
    assert (report.foreign_artifacts, report.missing_artifacts, report.clean) == (1, 1, False)
    assert report.problems == [
        ".agent_bench/runs: 1 files no episode of this run produced (set aside)",
        ".agent_bench/runs: 1 artifacts of this run's episodes are gone",
    ]
    assert sorted(os.listdir(run_dir.runs_root)) == ["r0.json", "r1.json"]
    assert (run_dir.path / "tainted" / "forged.json").is_file()


def test_artifacts_of_episodes_killed_by_an_interrupt_are_orphans_not_tampering(run_dir):
    (run_dir.runs_root / "r0.json").write_text("{}")
    (run_dir.runs_root / "in-flight.json").write_text("{}")
    report = check_artifacts(run_dir, {"r0": None}, interrupted=True)
    assert report.clean and report.foreign_artifacts == 0
    assert (run_dir.path / "orphaned-artifacts" / "in-flight.json").is_file()


def test_a_deleted_artifact_folder_is_a_problem(run_dir):
    import shutil

    shutil.rmtree(run_dir.runs_root)
    report = check_artifacts(run_dir, {"r0": None}, interrupted=False)
    assert report.problems[0] == ".agent_bench/runs was deleted or replaced during the run"
    assert report.missing_artifacts == 1 and run_dir.runs_root.is_dir()


def test_what_the_artifact_check_found_is_carried_into_the_run_check(run_dir, ledgers):
    (run_dir.runs_root / "forged.json").write_text("{}")
    artifacts = check_artifacts(run_dir, {}, interrupted=False)
    report = check_run(run_dir, ledgers, artifacts)
    assert report.foreign_artifacts == 1 and report.set_aside == artifacts.set_aside and not report.clean


def test_an_artifact_changed_after_its_worker_placed_it_is_set_aside(run_dir):
    import hashlib

    placed = {f"r{i}": b'{"success": true}\n' for i in range(3)}
    for run_id, data in placed.items():
        (run_dir.runs_root / f"{run_id}.json").write_bytes(data)
    (run_dir.runs_root / "r1.json").write_bytes(b'{"success": false}\n')  # rewritten in place
    sealed = {run_id: hashlib.sha256(data).digest() for run_id, data in placed.items()}
    report = check_artifacts(run_dir, sealed, interrupted=False)
    assert (report.altered_artifacts, report.missing_artifacts, report.foreign_artifacts) == (1, 0, 0)
    assert not report.clean and "1 artifacts changed after their worker placed them" in report.problems[0]
    assert sorted(os.listdir(run_dir.runs_root)) == ["r0.json", "r2.json"]
    assert (Path(report.set_aside) / "r1.json").read_bytes() == b'{"success": false}\n'


@pytest.mark.parametrize("plant", ["symlink", "fifo", "directory"])
def test_anything_but_a_file_at_a_published_name_is_set_aside(run_dir, ledgers, tmp_path, plant):
    victim = tmp_path / "victim.txt"
    victim.write_text("outside")
    name = run_dir.output_dir / "perf-summary-x.json"
    {"symlink": lambda: name.symlink_to(victim), "fifo": lambda: os.mkfifo(name), "directory": name.mkdir}[plant]()
    report = check_run(run_dir, ledgers, check_artifacts(run_dir, {}, interrupted=False), published=[name])
    assert not report.clean and report.problems[0].startswith("perf-summary-x.json: a ")
    assert not os.path.lexists(name) and os.path.lexists(Path(report.set_aside) / name.name)
    assert victim.read_text() == "outside"
