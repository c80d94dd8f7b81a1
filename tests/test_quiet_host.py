"""The quiet-host check: a run records how busy other processes kept the CPUs while it
started, and warns when that makes its figures noisy.

The host's readings are injected, never read from the machine the suite runs on: the CPU
time the host spent busy, ours and our zygote's, the core count, the load average and the
clock between the window's two readings (``tracecore_perf.run.hostinfo`` reads each through
a function or module of its own, and ``harness.start`` takes the probe that opened the
window). So a busy host is busy and a quiet one quiet whatever else runs beside the suite,
on any number of cores.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import structlog

from tracecore_perf.run import harness, hostinfo
from tracecore_perf.run.hostinfo import QUIET_CPU_BUSY_PERCENT, QUIET_LOAD_PER_CORE, BusyProbe, host_context
from tracecore_perf.run.scenario import DEFAULT_SCENARIO
from tracecore_perf.settings import RunSettings

from conftest import published


@dataclass
class Host:
    """Readings at the window's start (``later=False``) and at its end: over ``wall_s`` on
    ``cores`` cores, other processes kept the CPUs ``others_percent`` busy, and we (the
    harness and its zygote) used ``ours_s`` beside them."""

    cores: int = 2
    wall_s: float = 2.0
    others_percent: float = 80.0
    ours_s: float = 0.4
    load: tuple[float, float, float] = (0.2, 0.2, 0.2)
    later: bool = False

    def clock(self) -> float:
        return 100.0 + (self.wall_s if self.later else 0.0)

    def host_busy_s(self) -> float:
        others = self.others_percent / 100 * self.wall_s * self.cores
        return 1000.0 + ((others + self.ours_s) if self.later else 0.0)

    def own_cpu_s(self) -> float:  # the harness: three quarters of ours
        return 5.0 + (0.75 * self.ours_s if self.later else 0.0)

    def process_cpu_s(self, pid: int) -> float:  # the zygote, started as the window opened: the rest
        return 0.25 * self.ours_s if self.later else 0.0


class _Proxy:
    """A module with some of its functions replaced, the rest its own."""

    def __init__(self, module, **replaced) -> None:
        self._module, self._replaced = module, replaced

    def __getattr__(self, name: str):
        return self._replaced[name] if name in self._replaced else getattr(self._module, name)


@pytest.fixture
def host(monkeypatch) -> Host:
    readings = Host()
    monkeypatch.setattr(hostinfo, "_host_busy_s", readings.host_busy_s)
    monkeypatch.setattr(hostinfo, "_own_cpu_s", readings.own_cpu_s)
    monkeypatch.setattr(hostinfo, "_process_cpu_s", readings.process_cpu_s)
    monkeypatch.setattr(hostinfo, "time", _Proxy(hostinfo.time, monotonic=readings.clock))
    monkeypatch.setattr(hostinfo, "os", _Proxy(hostinfo.os, getloadavg=lambda: readings.load))
    monkeypatch.setattr(
        hostinfo, "psutil", _Proxy(psutil, cpu_count=lambda logical=True: readings.cores, virtual_memory=psutil.virtual_memory)
    )
    return readings


# --- the judgement, on injected readings (no process) --------------------------------------


@pytest.mark.parametrize("cores", [1, 2, 64])
def test_other_processes_busy_past_the_bar_make_a_busy_host(host: Host, cores: int):
    host.cores = cores
    probe = BusyProbe(own_processes=(4242,))
    host.later = True
    context = host_context(probe, own_processes=(4242,))
    assert context.cpu_busy_percent_start == 80.0  # ours (0.4 s, zygote included) not counted
    assert context.quiet is False and context.logical_cores == cores
    assert context.quiet_reason == "other processes kept the CPUs 80% busy before the run"


def test_our_own_cpu_time_does_not_make_the_host_busy(host: Host):
    host.others_percent, host.ours_s = 10.0, 3.5  # we kept both cores near-full ourselves
    probe = BusyProbe(own_processes=(4242,))
    host.later = True
    context = host_context(probe, own_processes=(4242,))
    assert context.cpu_busy_percent_start == 10.0 < QUIET_CPU_BUSY_PERCENT
    assert context.quiet is True and context.quiet_reason is None


def test_a_load_average_past_one_per_core_makes_a_busy_host(host: Host):
    host.others_percent = 0.0
    host.load = (2.5 * QUIET_LOAD_PER_CORE, 1.0, 0.5)  # 2.5 on 2 cores
    probe = BusyProbe()
    host.later = True
    context = host_context(probe)
    assert context.load_avg_start == [2.5, 1.0, 0.5]
    assert context.quiet is False and context.quiet_reason == "1-minute load 2.5 on 2 cores"


def test_a_window_too_short_to_judge_gives_no_busy_reading(host: Host):
    host.wall_s = 0.01
    probe = BusyProbe()
    host.later = True
    context = host_context(probe)
    assert context.cpu_busy_percent_start is None and context.quiet is True


# --- a real run, on a host injected busy or quiet --------------------------------------------


def _run(out: Path, host: Host, monkeypatch, instructions: bool = False) -> tuple[int, list[dict]]:
    settings = RunSettings(episodes=2, workers=1, python=sys.executable, keep_runs="none", instructions=instructions)
    options = harness.RunOptions(settings=settings, output_dir=str(out), scenario=list(DEFAULT_SCENARIO))
    probe = BusyProbe()  # the window opens; the run reads its end
    host.later = True
    with structlog.testing.capture_logs() as logs:
        # a fresh logger, first used under the capture: the module's own may have been bound
        # and cached (logs.configure caches on first use) by a run earlier in this process
        monkeypatch.setattr(harness, "log", structlog.get_logger("tracecore_perf.run.harness"))
        outcome = harness.start(options, show_progress=False, busy=probe)
    return outcome.exit_code, logs


@pytest.mark.slow  # real episodes
def test_a_busy_host_is_recorded_and_warned_about(tmp_path: Path, monkeypatch, host: Host):
    monkeypatch.chdir(tmp_path)
    exit_code, logs = _run(tmp_path / "out", host, monkeypatch)
    assert exit_code == 0
    recorded = published(tmp_path / "out", "manifest")["host"]
    assert recorded["quiet"] is False
    assert recorded["cpu_busy_percent_start"] == 80.0 > QUIET_CPU_BUSY_PERCENT
    assert "other processes kept the CPUs" in recorded["quiet_reason"]
    assert [(e["reason"], e["log_level"]) for e in logs if e["event"] == "host.busy"] == [(recorded["quiet_reason"], "warning")]


@pytest.mark.slow  # episodes under valgrind
def test_a_busy_host_is_recorded_but_no_warning_where_counts_are_judged(tmp_path: Path, monkeypatch, host: Host):
    """An instruction run's verdicts are on counts and page faults, which a busy host does not
    move: the host is recorded busy, and said so at info level, not warned about."""
    monkeypatch.chdir(tmp_path)
    exit_code, logs = _run(tmp_path / "out", host, monkeypatch, instructions=True)
    assert exit_code == 0
    recorded = published(tmp_path / "out", "manifest")["host"]
    assert recorded["quiet"] is False
    assert [(e["reason"], e["log_level"]) for e in logs if e["event"] == "host.busy"] == [(recorded["quiet_reason"], "info")]


@pytest.mark.slow  # real episodes
def test_a_quiet_host_is_recorded_quiet_without_a_warning(tmp_path: Path, monkeypatch, host: Host):
    monkeypatch.chdir(tmp_path)
    host.others_percent = 5.0
    exit_code, logs = _run(tmp_path / "out", host, monkeypatch)
    assert exit_code == 0
    recorded = published(tmp_path / "out", "manifest")["host"]
    assert recorded["quiet"] is True and recorded["quiet_reason"] is None
    assert recorded["cpu_busy_percent_start"] == 5.0
    assert not [e for e in logs if e["event"] == "host.busy"]
