"""--python: the episodes run under another interpreter and its own TraceCore, which has
nothing of ours installed; both isolation modes keep the per-episode accounting."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import harness, published

pytestmark = pytest.mark.slow  # every test here runs the harness: real episodes


@pytest.fixture(scope="module")
def other_python(tracecore_release) -> Path:
    """A separate environment holding TraceCore and its dependencies only."""
    return tracecore_release()


def test_the_other_environment_has_tracecore_and_nothing_of_ours(other_python: Path):
    probe = subprocess.run([other_python, "-c", "import agent_bench, tracecore_perf"], capture_output=True, text=True, cwd="/")
    assert "No module named 'tracecore_perf'" in probe.stderr


@pytest.mark.parametrize("isolation", ["forkserver", "spawn"])
def test_episodes_run_under_the_given_interpreter(tmp_path: Path, other_python: Path, isolation: str):
    out = tmp_path / "out"
    done = harness("--python", str(other_python), "--isolation", isolation, "--episodes", "4", "--workers", "2",
                   "--strict-spec", "--output-dir", str(out), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    manifest = published(out, "manifest")
    assert manifest["interpreter"]["executable"] == str(other_python)
    assert manifest["settings"]["isolation"] == isolation and manifest["settings"]["python"] == str(other_python)
    series = published(out, "series")
    # The kernel splits a process's CPU into user and system by the ticks it sampled: a short
    # episode can show all of it as system time, so the accounting is checked as a whole.
    assert all(row["success"] and row["cpu_user_s"] + row["cpu_sys_s"] > 0 and row["max_rss_bytes"] > 0 for row in series)
    assert sum(row["run_count"] for row in published(out, "metrics")) == 4
