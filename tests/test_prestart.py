"""The zygote started before the harness's imports (``spawn.prestart``): a run adopts the one
started for it and closes it as its own, discards one started for other options, and never
leaves one behind. Real zygotes and real episodes, through the library entry point."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from tracecore_perf.run import harness
from tracecore_perf.run.hostinfo import BusyProbe
from tracecore_perf.run.scenario import DEFAULT_SCENARIO
from tracecore_perf.run.spawn import prestart
from tracecore_perf.settings import RunSettings

from conftest import published

pytestmark = pytest.mark.slow  # real zygotes and episodes


def _options(out: Path, isolation: str = "forkserver") -> harness.RunOptions:
    settings = RunSettings(episodes=4, workers=2, timeout=60.0, isolation=isolation, python=sys.executable, keep_runs="none")
    return harness.RunOptions(settings=settings, output_dir=str(out), scenario=list(DEFAULT_SCENARIO))


def test_a_run_adopts_the_zygote_started_for_it(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    zygote = prestart(sys.executable, "forkserver")
    busy = BusyProbe(own_processes=(zygote.process.pid,))
    outcome = harness.start(_options(tmp_path / "out"), show_progress=False, zygote=zygote, busy=busy)
    assert outcome.exit_code == 0
    assert published(tmp_path / "out", "summary")["success_count"] == 4
    # the run used it and closed it through the protocol (exit 0); it was never killed
    assert zygote.adopted
    assert zygote.process.returncode == 0


def test_a_zygote_started_for_other_options_is_discarded(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    zygote = prestart(sys.executable, "spawn")  # the run below is forkserver
    outcome = harness.start(_options(tmp_path / "out"), show_progress=False, zygote=zygote)
    assert outcome.exit_code == 0
    assert published(tmp_path / "out", "summary")["success_count"] == 4
    assert zygote.process.returncode == -signal.SIGKILL  # killed unused; the run started its own


def test_a_zygote_never_adopted_is_killed_and_reaped_once(tmp_path: Path):
    zygote = prestart(sys.executable, "forkserver")
    zygote.discard()
    zygote.discard()  # the CLI's finally after a run that failed to start: a no-op
    assert zygote.process.returncode == -signal.SIGKILL
    assert zygote.control.fileno() == -1  # its socket closed


def test_no_zygote_for_an_interpreter_that_is_not_there(tmp_path: Path):
    assert prestart(str(tmp_path / "no-python"), "forkserver") is None  # the run's own check says why
