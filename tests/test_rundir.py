"""A run directory appears with its manifest in it, in one step (``RunDir.create_with``): a
harness stopped while making it, however it is stopped, leaves no ``run-<stamp>`` that
``--resume`` could not take."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest
from test_publish import manifest

from tracecore_perf.errors import UsageError
from tracecore_perf.run.rundir import MANIFEST, RunDir

STAMP = "20260101T000000Z"


def test_the_run_directory_appears_with_its_manifest_and_its_lock(tmp_path: Path):
    run_dir = RunDir(tmp_path / f"run-{STAMP}")
    run_dir.create_with(manifest(run_dir))
    try:
        assert json.loads((run_dir.path / MANIFEST).read_text())["stamp"] == STAMP
        assert run_dir.logs.is_dir() and run_dir.runs_root.is_dir()
        assert [p.name for p in tmp_path.iterdir()] == [run_dir.path.name]  # nothing left beside it
        # the lock taken while it was made moved with it: another open of run.lock cannot take it
        # (flock locks belong to the open file, so this holds within one process too)
        with open(run_dir.path / "run.lock", "a") as other, pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        run_dir.unlock()


def test_stopped_while_it_is_made_no_run_directory_is_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def interrupted(self, manifest):
        raise KeyboardInterrupt  # as a signal landing between the folder and its manifest

    monkeypatch.setattr(RunDir, "write_manifest", interrupted)
    run_dir = RunDir(tmp_path / f"run-{STAMP}")
    with pytest.raises(KeyboardInterrupt):
        run_dir.create_with(manifest(run_dir))
    assert list(tmp_path.iterdir()) == []


def test_a_name_taken_meanwhile_is_not_overwritten(tmp_path: Path):
    run_dir = RunDir(tmp_path / f"run-{STAMP}")
    (run_dir.path / "logs").mkdir(parents=True)  # another run took the name after the stamp was chosen
    (run_dir.path / "logs" / "theirs.log").write_text("kept")
    with pytest.raises(OSError):
        run_dir.create_with(manifest(run_dir))
    assert (run_dir.path / "logs" / "theirs.log").read_text() == "kept" and not (run_dir.path / MANIFEST).exists()
    assert [p.name for p in tmp_path.iterdir()] == [run_dir.path.name]


def test_the_run_directory_itself_stays_locked_when_run_lock_is_deleted(tmp_path: Path):
    """An episode (outside --sandbox) can delete run.lock; a second --resume would then take a
    fresh one. The folder's own lock is still held: that one no file operation undoes."""
    run_dir = RunDir(tmp_path / f"run-{STAMP}")
    run_dir.create_with(manifest(run_dir))
    try:
        (run_dir.path / "run.lock").unlink()
        folder = os.open(run_dir.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(folder)
    finally:
        run_dir.unlock()
    folder = os.open(run_dir.path, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # let go: free again
    os.close(folder)


def test_a_link_in_the_run_directorys_place_is_one_line_not_a_crash(tmp_path: Path):
    real = tmp_path / "elsewhere"
    real.mkdir()
    link = tmp_path / f"run-{STAMP}"
    link.symlink_to(real)
    with pytest.raises(UsageError, match="cannot lock the run directory .*: a link stands at its name"):
        RunDir(link).lock()
