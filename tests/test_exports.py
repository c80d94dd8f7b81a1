"""``export RUN --format bmf|github-action-benchmark`` and ``compare --format markdown``: what a
TraceCore maintainer's CI sends to Bencher, to github-action-benchmark and to a PR comment,
from real runs. The BMF output is held to Bencher's published JSON schema
(https://bencher.dev/bmf.json, from https://bencher.dev/docs/reference/bencher-metric-format,
kept in tests/data/bencher-bmf.schema.json)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from conftest import REPO, harness, scenario_file

pytestmark = pytest.mark.slow  # real episodes

BMF_SCHEMA = json.loads((Path(__file__).parent / "data" / "bencher-bmf.schema.json").read_text())
ROWS = [
    {"agent": "agents/toy_agent.py", "task_ref": "filesystem_hidden_config@1", "seed": 42},
    {"agent": "agents/rate_limit_agent.py", "task_ref": "rate_limited_api@1", "seed": 11},
]
BENCHMARKS = {"agents/toy_agent.py on filesystem_hidden_config@1", "agents/rate_limit_agent.py on rate_limited_api@1"}
# a real instruction-mode run, committed as CI's instruction baseline
COUNTED = REPO / "deliverables" / "perf" / "baseline-slice-instructions"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two real runs of the same two rows, 12 episodes each (6 a row: enough for a median's interval)."""
    work = tmp_path_factory.mktemp("exports")
    scenario = scenario_file(work / "rows.json", ROWS)
    found = {"work": work}
    for name in ("base", "head"):
        done = harness("--episodes", "12", "--workers", "2", "--scenario", str(scenario), "--no-progress",
                       "--output-dir", name, cwd=work)  # fmt: skip
        assert done.returncode == 0, done.stderr
        (found[name],) = (work / name).glob("run-*")
    return found


def export(run: Path, fmt: str, cwd: Path) -> object:
    done = harness("export", str(run), "--format", fmt, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_bmf_validates_against_benchers_schema_with_a_benchmark_per_row(runs):
    found = export(runs["base"], "bmf", runs["work"])
    jsonschema.Draft7Validator(BMF_SCHEMA).validate(found)
    assert set(found) == BENCHMARKS
    for measures in found.values():
        assert set(measures) == {"cpu-time", "latency", "latency-p95", "artifact-bytes", "success-rate"}
        for slug in ("cpu-time", "latency"):  # medians of 6 episodes: with their 95% interval, in ns
            m = measures[slug]
            assert 1e5 < m["lower_value"] <= m["value"] <= m["upper_value"] < 1e11
        assert measures["success-rate"] == {"value": 1.0} and measures["artifact-bytes"]["value"] > 0
        assert measures["latency-p95"]["value"] >= measures["latency"]["value"]


def test_bmf_of_an_instruction_run_carries_counts_and_no_time(runs):
    found = export(COUNTED, "bmf", runs["work"])
    jsonschema.Draft7Validator(BMF_SCHEMA).validate(found)
    summary = json.loads(next(COUNTED.glob("perf-summary-*.json")).read_text())
    medians = {f"{row['agent']} on {row['task_ref']}": row["median"] for row in summary["instructions"]}
    assert set(found) == set(medians)
    for name, measures in found.items():
        assert "cpu-time" not in measures and "latency" not in measures  # Valgrind's time, not the code's
        assert measures["instructions"]["value"] == pytest.approx(medians[name])


def test_github_action_benchmark_is_a_custom_smaller_is_better_list(runs):
    found = export(runs["base"], "github-action-benchmark", runs["work"])
    manifest = json.loads(next(runs["base"].parent.glob("perf-manifest-*.json")).read_text())
    assert isinstance(found, list) and len(found) == 2 * 5
    for entry in found:
        assert set(entry) <= {"name", "unit", "value", "range", "extra"} and {"name", "unit", "value"} <= set(entry)
        assert isinstance(entry["value"], int | float) and entry["value"] >= 0
        assert f"machine {manifest['machine_class']}" in entry["extra"]
    names = {entry["name"] for entry in found}
    assert "agents/toy_agent.py on filesystem_hidden_config@1: failure rate" in names
    cpu = next(e for e in found if e["name"].endswith("CPU time per episode"))
    assert cpu["unit"] == "ms" and cpu["range"].startswith("± ") and "95% interval of the median" in cpu["extra"]


def test_export_writes_a_file_and_refuses_a_tainted_run(runs, tmp_path):
    target = tmp_path / "bmf.json"
    done = harness("export", str(runs["base"]), "--format", "bmf", "--output", str(target), cwd=runs["work"])
    assert done.returncode == 0 and done.stdout == "" and set(json.loads(target.read_text())) == BENCHMARKS
    copy = tmp_path / "copy"
    shutil.copytree(runs["base"].parent, copy, ignore=shutil.ignore_patterns("run-*"))
    (summary,) = copy.glob("perf-summary-*.json")
    summary.write_text(json.dumps(json.loads(summary.read_text()) | {"status": "tainted"}))
    done = harness("export", str(summary), "--format", "bmf", cwd=runs["work"])
    assert done.returncode == 2 and done.stdout == "" and "tainted" in done.stderr.strip().splitlines()[-1]


def test_compare_markdown_is_a_table_a_pr_comment_holds(runs):
    done = harness("compare", str(runs["base"]), str(runs["head"]), "--format", "markdown", cwd=runs["work"])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "<!-- tracecore-perf -->" and lines[1].startswith("### tracecore-perf compare ")
    table = [line for line in lines if line.startswith("| ") and " on " in line]
    assert len(table) == 2 and all(" x" in line and " [" in line for line in table)  # ratio and interval per row
