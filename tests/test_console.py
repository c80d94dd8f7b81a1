"""What a person sees: a progress bar on a terminal, none when output is not a terminal,
and the closing table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import harness, wait_watched

pytestmark = pytest.mark.slow  # every test here runs the harness: real episodes

BAR = "━"


def test_progress_bar_on_a_terminal(tmp_path: Path):
    primary, secondary = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracecore_perf", "--episodes", "8", "--workers", "2", "--output-dir", str(tmp_path / "out")],
        cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=secondary, text=True,
    )  # fmt: skip
    os.close(secondary)
    screen = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal closed: the harness exited
            break
        if not chunk:
            break
        screen += chunk
    os.close(primary)
    wait_watched(proc, watch=[tmp_path])  # the terminal closed: the harness has exited, or is about to
    text = screen.decode(errors="replace")
    assert proc.returncode == 0
    assert BAR in text and "episodes" in text and "/8" in text and "failed" in text


def test_no_bar_when_not_a_terminal_and_a_closing_table(tmp_path: Path):
    done = harness("--episodes", "4", "--workers", "2", "--output-dir", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 0
    assert BAR not in done.stderr
    for label in ("episodes", "throughput", "latency (wall)", "run artifacts", "summary", "series"):
        assert label in done.stdout
    assert "4 (4 ok, 0 failed, 0 timed out)" in done.stdout
