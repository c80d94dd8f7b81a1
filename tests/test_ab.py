"""`ab --python A --python B`: the same planned episodes under two interpreters, in
interleaved chunks, then the comparison. Here both sides are this interpreter (an A/A run),
which is what the validity benchmark needs too."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import pytest
from runs import TASK, TOY

from conftest import harness, scenario_file

pytestmark = pytest.mark.slow  # every test here runs the harness: real episodes


def _manifest(side: Path) -> dict:
    (path,) = side.glob("perf-manifest-*.json")
    return json.loads(path.read_text())


def _series(side: Path) -> list[dict]:
    (path,) = side.glob("perf-series-*.json")
    return json.loads(path.read_text())


def test_ab_runs_the_same_episodes_interleaved_and_compares(tmp_path):
    scenario = scenario_file(tmp_path / "s.json", [{"agent": TOY, "task_ref": TASK, "seed": 5}])
    args = ("--episodes", "8", "--rounds", "2", "--workers", "2", "--scenario", str(scenario), "--output-dir", "ab")
    done = harness("ab", "--python", sys.executable, "--python", sys.executable, *args, "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["verdict"] in ("no change", "faster", "slower")
    assert [r["agent"] for r in result["rows"]] == [TOY]
    assert result["machine_class_match"] is True

    a, b = _manifest(tmp_path / "ab" / "a"), _manifest(tmp_path / "ab" / "b")
    for manifest in (a, b):
        assert manifest["settings"]["episodes"] == manifest["episodes"] == 8
        assert [attempt["episodes_run"] for attempt in manifest["attempts"]] == [4, 4]
    # the same plan on both sides: same seeds, same episode indices
    seeds = [(r["episode_index"], r["seed"]) for r in _series(tmp_path / "ab" / "a")]
    assert seeds == [(r["episode_index"], r["seed"]) for r in _series(tmp_path / "ab" / "b")]
    assert seeds == [(i, 5 + i) for i in range(8)]
    # ABBA: A1, B1, then B2, A2
    order = sorted(
        [("A", n, x["started_at"]) for n, x in enumerate(a["attempts"])]
        + [("B", n, x["started_at"]) for n, x in enumerate(b["attempts"])],
        key=lambda item: datetime.fromisoformat(item[2]),
    )
    assert [(side, n) for side, n, _ in order] == [("A", 0), ("B", 0), ("B", 1), ("A", 1)]


def test_ab_needs_exactly_two_interpreters(tmp_path):
    done = harness("ab", "--python", sys.executable, "--episodes", "4", "--output-dir", "ab", cwd=tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "--python must be given exactly twice" in line
    assert not (tmp_path / "ab").exists()


def test_ab_checks_both_interpreters_before_running_either(tmp_path):
    missing = str(tmp_path / "no-python")
    done = harness("ab", "--python", sys.executable, "--python", missing, "--episodes", "4", "--output-dir", "ab", cwd=tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "no-python" in line
    assert not (tmp_path / "ab").exists()
