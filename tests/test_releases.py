"""Every TraceCore release since 0.9.5 as the episode runtime (``--python``, ``ab``, matrix
cells). 0.9.5 is the oldest release with the runner, the toy agent and the scenario's tasks;
it has neither the spec checker nor the metrics pipeline (both from 1.0.0), and 1.0.0's wheel
left out the schema its spec checker reads. The harness uses only what the episode
interpreter's TraceCore has: a run without the metrics pipeline publishes an empty metrics
file and says why, and ``--strict-spec`` against a TraceCore that cannot check is one line,
exit 2. Each release is built from PyPI into an environment of its own, once per session."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest

from conftest import harness, published

pytestmark = pytest.mark.slow  # real episodes under real TraceCore releases

OLDEST = "0.9.5"
TOY = '{agent = "agents/toy_agent.py", task_ref = "filesystem_hidden_config@1", seed = 42}'


def test_a_short_run_under_the_oldest_release(tmp_path: Path, tracecore_release):
    python = tracecore_release(OLDEST)
    done = harness("--python", str(python), "--episodes", "4", "--workers", "2", "--no-progress", "--check",
                   "--output-dir", "out", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    manifest = published(tmp_path / "out", "manifest")
    assert manifest["interpreter"]["tracecore_version"] == OLDEST
    assert manifest["interpreter"]["lacks"] == ["metrics", "spec_check"]
    assert all(row["success"] for row in published(tmp_path / "out", "series"))
    assert published(tmp_path / "out", "metrics") == []
    assert "no metrics pipeline (agent_bench.runner.metrics arrived in 1.0.0)" in done.stdout


@pytest.mark.parametrize(("version", "says"), [(OLDEST, "arrived in TraceCore 1.0.0"), ("1.0.0", "cannot load schema")])
def test_strict_spec_where_the_release_cannot_check_is_one_line(tmp_path: Path, tracecore_release, version, says):
    python = tracecore_release(version)
    done = harness("--python", str(python), "--episodes", "2", "--strict-spec", "--output-dir", "out", cwd=tmp_path)
    (line,) = done.stderr.strip().splitlines()
    assert done.returncode == 2 and line.startswith("tracecore-perf: error: --strict-spec: TraceCore") and says in line
    assert not (tmp_path / "out").exists()


@pytest.mark.long
def test_a_matrix_over_three_releases_counts_their_regressions(tmp_path: Path, tracecore_release):
    """0.9.5, 1.0.0 and the installed release (1.1.3 in CI), one interpreter, instruction
    counts: every cell ok, each comparison with its numbers, and each newer release's toy
    episode measurably dearer (TraceCore's own cost grew: 0.9.5 -> 1.0.0 x1.09, -> 1.1.3
    x1.16 on this host class), so ``--fail-on regression`` exits 1."""
    cells = [("tc-0.9.5", tracecore_release(OLDEST)), ("tc-1.0.0", tracecore_release("1.0.0")), ("installed", None)]
    lines = ["episodes = 6", "workers = 2", "instructions = true", f"rows = [{TOY}]"]
    for name, python in cells:
        lines += ["[[cells]]", f'name = "{name}"'] + ([f'python = "{python}"'] if python else [])
    (tmp_path / "releases.toml").write_text("\n".join(lines) + "\n")
    done = harness("matrix", "releases.toml", "--output-dir", "out", "--json", "--fail-on", "regression", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    payload = json.loads(done.stdout)
    assert payload["ok"] is False and [c["status"] for c in payload["cells"]] == ["ok"] * 3
    versions = [published(tmp_path / c["path"], "manifest")["interpreter"]["tracecore_version"] for c in payload["cells"]]
    assert versions == [OLDEST, "1.0.0", metadata.version("tracecore")]
    assert len({c["machine_id"] for c in payload["cells"]}) == 1
    assert len(payload["comparisons"]) == 3
    for comparison in payload["comparisons"]:
        (row,) = comparison["comparison"]["rows"]
        assert comparison["comparison"]["metric"] == row["metric"] == "instructions"
        assert row["ratio"]["low"] <= row["ratio"]["value"] <= row["ratio"]["high"] and row["p_value"] is not None
        assert comparison["different_machine_class"] is False
    oldest_to_installed = next(c for c in payload["comparisons"] if (c["baseline"], c["current"]) == ("tc-0.9.5", "installed"))
    assert (
        oldest_to_installed["regression"] is True
        and oldest_to_installed["ok"] is False
        and oldest_to_installed["comparison"]["rows"][0]["ratio"]["value"] > 1.05
    )
