"""`compare BASELINE CURRENT` on real runs of a fixture agent whose work per step is set by
the environment: the same work twice is no change, 60% more is a regression."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from runs import fixture_agent, real_run

from tracecore_perf.compare import Settings, compare_runs
from tracecore_perf.loadrun import locate
from tracecore_perf.verdict import Comparison

from conftest import harness


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("compare")
    agent = [fixture_agent("busy_agent")]
    made = {
        name: real_run(work, name, agent, 20, env={"BUSY_AGENT_ROUNDS": rounds})
        for name, rounds in (("base", "10000"), ("same", "10000"), ("heavy", "16000"))
    }
    made["work"] = work
    return made


def compare(runs, baseline: str, current: str, *args: str) -> tuple[int, dict]:
    done = harness("compare", str(runs[baseline]), str(runs[current]), "--format", "json", *args, cwd=runs["work"])
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_the_same_work_twice_is_no_change(runs):
    code, result = compare(runs, "base", "same", "--metric", "cpu_s", "--fail-on", "regression")
    assert code == 0 and result["verdict"] == "no change"
    (row,) = result["rows"]
    assert row["verdict"] == "no change" and row["regression"] is False
    assert row["ratio"]["low"] <= 1.05 and row["ratio"]["high"] >= 0.95
    assert result["machine_class_match"] is True


def test_more_work_per_step_is_a_regression(runs):
    code, result = compare(runs, "base", "heavy", "--metric", "cpu_s", "--fail-on", "regression")
    assert code == 1 and result["ok"] is False and result["verdict"] == "slower"
    (row,) = result["rows"]
    assert row["verdict"] == "slower" and row["regression"] is True
    assert row["ratio"]["low"] > 1.1  # the whole interval clears the 10% margin
    assert row["p_adjusted"] < 0.01 and row["shift_s"]["value"] > 0
    assert row["success_rate_delta"] == 0 and row["baseline_n"] == row["current_n"] == 20


def _in_process(runs, baseline: str, current: str, **settings) -> Comparison:
    """The comparison itself, without a process start (the CLI paths are tested above)."""
    fail = settings.pop("fail_on_regression", False)
    return compare_runs(locate(runs[baseline]), locate(runs[current]), Settings(**settings), fail_on_regression=fail)


def test_without_fail_on_a_regression_is_reported_but_ok(runs):
    result = _in_process(runs, "base", "heavy", metric="cpu_s")
    assert result.ok and result.rows[0].regression


def test_the_other_way_round_is_faster(runs):
    result = _in_process(runs, "heavy", "base", metric="cpu_s", fail_on_regression=True)
    assert result.ok and result.verdict == "faster" and result.rows[0].ratio.high < 1


def test_a_wide_margin_turns_the_regression_into_a_slower_row(runs):
    result = _in_process(runs, "base", "heavy", metric="cpu_s", margin=0.9, fail_on_regression=True)
    assert result.ok and result.rows[0].verdict == "slower" and not result.rows[0].regression


def test_text_github_and_junit_outputs(runs, tmp_path):
    base, heavy, work = str(runs["base"]), str(runs["heavy"]), runs["work"]
    done = harness("compare", base, heavy, "--metric", "cpu_s", "--fail-on", "regression", cwd=work)
    assert done.returncode == 1
    assert "REGRESSION slower" in done.stdout and "SLOWER" in done.stdout.splitlines()[0]
    summary = tmp_path / "summary.md"
    env = {"GITHUB_STEP_SUMMARY": str(summary)}
    args = ("--metric", "cpu_s", "--fail-on", "regression", "--format", "github")
    done = harness("compare", base, heavy, *args, cwd=work, env=env)
    assert any(line.startswith("::error ") and "busy_agent.py" in line for line in done.stdout.splitlines())
    assert "| ❌ | compare:" in summary.read_text()
    junit = tmp_path / "compare.xml"
    args = ("--metric", "cpu_s", "--fail-on", "regression", "--format", "junit", "--junit-file", str(junit))
    assert harness("compare", base, heavy, *args, cwd=work).returncode == 1
    (case,) = [c for c in ET.parse(junit).getroot().iter("testcase") if c.get("classname") == "tracecore_perf.compare"]
    assert case.find("failure") is not None


def test_wall_clock_is_the_default_metric(runs):
    result = _in_process(runs, "base", "same")
    assert result.metric == "wall_clock_s" and result.rows[0].baseline_median_s > 0
    assert result.throughput_eps_baseline > 0 and "episode_max_rss_bytes" in result.resource_deltas


def test_machine_class_mismatch_is_loud(runs, tmp_path):
    """The baseline's artifacts as if they came from another machine."""
    stamp = runs["base"].name.removeprefix("run-")
    for path in runs["base"].parent.glob(f"perf-*-{stamp}.json"):
        shutil.copy(path, tmp_path / path.name)
    manifest_path = tmp_path / f"perf-manifest-{stamp}.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["machine_class"] = "0123456789ab"
    manifest["machine_class_fields"]["cpu_model"] = "Some Other CPU"
    manifest_path.write_text(json.dumps(manifest))
    done = harness("compare", str(manifest_path), str(runs["same"]), "--format", "json", cwd=runs["work"])
    assert "WARNING: MACHINE CLASS MISMATCH" in done.stderr and "cpu_model" in done.stderr
    result = json.loads(done.stdout)
    assert result["machine_class_match"] is False and result["warnings"][0].startswith("MACHINE CLASS MISMATCH")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--margin", "1.5"], "argument --margin: must be between 0 and 1"),
        (["--alpha", "0"], "argument --alpha: must be above 0"),
        (["--metric", "speed"], "invalid choice: 'speed'"),
        (["--fail-on", "sometimes"], "invalid choice: 'sometimes'"),
    ],
)
def test_bad_flags_are_one_line_exit_2(runs, args, message):
    done = harness("compare", str(runs["base"]), str(runs["same"]), *args, cwd=runs["work"])
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert message in line


def test_a_missing_run_is_one_line_exit_2(runs, tmp_path):
    done = harness("compare", str(runs["base"]), str(tmp_path), cwd=runs["work"])
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "not a tracecore-perf run" in line


def test_runs_set_up_differently_are_called_out(runs):
    single = real_run(runs["work"], "single", [fixture_agent("busy_agent")], 4, "--workers", "1",
                      env={"BUSY_AGENT_ROUNDS": "10000"})  # fmt: skip
    _, result = compare({**runs, "single": single}, "base", "single", "--metric", "cpu_s")
    assert any("set up differently (workers 2 vs 1)" in warning for warning in result["warnings"]), result["warnings"]
    _, same = compare(runs, "base", "same", "--metric", "cpu_s")
    assert not any("set up differently" in warning for warning in same["warnings"])
