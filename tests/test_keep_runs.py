"""--keep-runs bounds what a long run leaves on disk; the figures are still measured."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import AGENTS, harness, published, scenario_file

pytestmark = pytest.mark.slow  # every test here runs the harness: real episodes

ROWS = [
    {"agent": "agents/toy_agent.py", "task_ref": "filesystem_hidden_config@1", "seed": 1},
    {"agent": "agents/naive_llm_agent.py", "task_ref": "rate_limited_chain@1", "seed": 1},  # fails its task
    {"agent": str(AGENTS / "raising_agent.py"), "task_ref": "filesystem_hidden_config@1", "seed": 1},  # no artifact
]


@pytest.mark.parametrize(("keep", "left"), [("all", 4), ("failed", 2), ("none", 0)])
def test_keep_runs(tmp_path: Path, keep: str, left: int):
    out = tmp_path / "out"
    done = harness("--scenario", str(scenario_file(tmp_path / "s.json", ROWS)), "--episodes", "6", "--workers", "2",
                   "--keep-runs", keep, "--output-dir", str(out), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1, done.stderr
    series = published(out, "series")
    assert [row["success"] for row in series] == [True, False, False] * 2
    (run_dir,) = out.glob("run-*")
    remaining = {p.stem for p in (run_dir / ".agent_bench" / "runs").glob("*.json")}
    assert len(remaining) == left
    if keep == "failed":
        assert remaining == {row["run_id"] for row in series if row["run_id"] and not row["success"]}
    summary = published(out, "summary")
    assert summary["run_artifacts"]["file_count"] == 4  # measured before pruning
    assert sum(row["run_count"] for row in published(out, "metrics")) == 4
