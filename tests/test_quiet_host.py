"""The quiet-host check: a run records how busy other processes kept the CPUs while it
started, and warns when that makes its figures noisy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tracecore_perf.run.hostinfo import QUIET_CPU_BUSY_PERCENT

from conftest import harness, published

pytestmark = pytest.mark.slow  # every test here runs the harness: real episodes

BURN = "import time\nend = time.monotonic() + 60\nwhile time.monotonic() < end: pass\n"


def test_a_busy_host_is_recorded_and_warned_about(tmp_path: Path):
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(os.cpu_count() or 2)]
    try:
        done = harness("--episodes", "2", "--workers", "1", "--output-dir", str(tmp_path / "out"), cwd=tmp_path)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    assert done.returncode == 0, done.stderr
    host = published(tmp_path / "out", "manifest")["host"]
    assert host["quiet"] is False
    # Two burners on two cores, beside a harness that is itself importing on one core while
    # its zygote warms up on the other: they get about half the CPUs, well past the bar.
    assert host["cpu_busy_percent_start"] > QUIET_CPU_BUSY_PERCENT
    assert "other processes kept the CPUs" in host["quiet_reason"]
    assert "host.busy" in done.stderr
