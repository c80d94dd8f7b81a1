"""`compare BASELINE CURRENT` on real runs of a fixture agent whose work per step is set by
the environment. Verdicts asserted here have a known answer: a run against itself is no change
(the same numbers), and eight times the work per step is a regression by a margin no drift of
this host comes near (the statistics on data with known answers are in test_compare_stats.py)."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from runs import fixture_agent, real_run

from tracecore_perf.published import locate
from tracecore_perf.verdicts.compare import Settings, compare_runs
from tracecore_perf.verdicts.models import Comparison

from conftest import harness

pytestmark = pytest.mark.slow  # every test here uses real runs

LIGHT, HEAVY = "10000", "80000"  # hash rounds per step: ~3 ms and ~24 ms of CPU on this host class


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("compare")
    agent = [fixture_agent("busy_agent")]
    made = {
        name: real_run(work, name, agent, 20, env={"BUSY_AGENT_ROUNDS": rounds})
        for name, rounds in (("base", LIGHT), ("heavy", HEAVY))
    }
    made["work"] = work
    return made


def compare(runs, baseline: str, current: str, *args: str) -> tuple[int, dict]:
    done = harness("compare", str(runs[baseline]), str(runs[current]), "--format", "json", *args, cwd=runs["work"])
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def _copy_run(run_dir: Path, target: Path) -> Path:
    """The run's published artifacts in another folder, to edit; returns the manifest's path."""
    stamp = run_dir.name.removeprefix("run-")
    for path in run_dir.parent.glob(f"perf-*-{stamp}.json"):
        shutil.copy(path, target / path.name)
    return target / f"perf-manifest-{stamp}.json"


def test_a_run_against_itself_is_no_change(runs):
    code, result = compare(runs, "base", "base", "--fail-on", "regression")
    assert code == 0 and result["verdict"] == "no change" and result["metric"] == "cpu_s"
    (row,) = result["rows"]
    assert row["verdict"] == "no change" and row["regression"] is False
    assert row["ratio"]["value"] == 1 and row["ratio"]["low"] < 1 < row["ratio"]["high"]
    assert row["p_value"] == 1
    assert result["machine_class_match"] is True and result["setup_match"] is True


def test_eight_times_the_work_per_step_is_a_regression(runs):
    code, result = compare(runs, "base", "heavy", "--fail-on", "regression")
    assert code == 1 and result["ok"] is False and result["verdict"] == "slower"
    (row,) = result["rows"]
    assert row["verdict"] == "slower" and row["regression"] is True
    assert row["ratio"]["low"] > 1.1  # the whole interval clears the 10% margin
    assert row["p_adjusted"] < 0.01 and row["shift_s"]["value"] > 0
    assert row["success_rate_delta"] == 0 and row["baseline_n"] == row["current_n"] == 20
    assert row["se_log_ratio"] >= (2 * 0.05**2) ** 0.5  # never less than the drift floor of both runs


def _in_process(runs, baseline: str, current: str, **settings) -> Comparison:
    """The comparison itself, without a process start (the CLI paths are tested above)."""
    fail = settings.pop("fail_on_regression", False)
    return compare_runs(locate(runs[baseline]), locate(runs[current]), Settings(**settings), fail_on_regression=fail)


def test_without_fail_on_a_regression_is_reported_but_ok(runs):
    result = _in_process(runs, "base", "heavy")
    assert result.ok and result.rows[0].regression


def test_the_other_way_round_is_faster(runs):
    result = _in_process(runs, "heavy", "base", fail_on_regression=True)
    assert result.ok and result.verdict == "faster" and result.rows[0].ratio.high < 1


def test_text_github_and_junit_outputs(runs, tmp_path):
    base, heavy, work = str(runs["base"]), str(runs["heavy"]), runs["work"]
    done = harness("compare", base, heavy, "--fail-on", "regression", cwd=work)
    assert done.returncode == 1
    assert "REGRESSION slower" in done.stdout and "SLOWER" in done.stdout.splitlines()[0]
    assert "between-run drift at least 5% per run" in done.stdout
    summary = tmp_path / "summary.md"
    env = {"GITHUB_STEP_SUMMARY": str(summary)}
    args = ("--fail-on", "regression", "--format", "github")
    done = harness("compare", base, heavy, *args, cwd=work, env=env)
    assert any(line.startswith("::error ") and "busy_agent.py" in line for line in done.stdout.splitlines())
    assert re.search(r"^\| ❌ \| .*busy_agent\.py on \S+ \| REGRESSION \| x", summary.read_text(), re.M)
    junit = tmp_path / "compare.xml"
    args = ("--fail-on", "regression", "--format", "junit", "--junit-file", str(junit))
    assert harness("compare", base, heavy, *args, cwd=work).returncode == 1
    (case,) = [c for c in ET.parse(junit).getroot().iter("testcase") if c.get("classname") == "tracecore_perf.compare"]
    assert case.find("failure") is not None


def test_other_metrics_on_request(runs):
    for metric in ("wall_clock_s", "episode_s"):
        result = _in_process(runs, "base", "base", metric=metric)
        assert result.metric == metric and result.rows[0].verdict == "no change" and result.rows[0].baseline_median_s > 0
    assert result.throughput_eps_baseline > 0 and "episode_max_rss_bytes" in result.resource_deltas


def test_different_hardware_is_loud_and_another_tracecore_is_not_another_machine(runs, tmp_path):
    """The baseline's artifacts as if they came from another machine, then as if from
    another TraceCore on this one: the machine id is the hardware's alone."""
    manifest_path = _copy_run(runs["base"], tmp_path)
    original = json.loads(manifest_path.read_text())
    manifest = json.loads(json.dumps(original))
    manifest["machine_class_fields"]["cpu_model"] = "Some Other CPU"
    manifest_path.write_text(json.dumps(manifest))
    done = harness("compare", str(manifest_path), str(runs["base"]), "--format", "json", cwd=runs["work"])
    assert "WARNING: DIFFERENT MACHINES" in done.stderr and "cpu_model" in done.stderr
    result = json.loads(done.stdout)
    codes = [n["code"] for n in result["notices"]]  # busy_host may follow, on a busy host
    assert result["machine_class_match"] is False and codes[0] == "machine_class_mismatch" and "setup_mismatch" not in codes
    assert result["warnings"] == [n["message"] for n in result["notices"]]  # the text, as before codes
    assert result["machine_ids"][0] != result["machine_ids"][1] == original["machine_class"]

    manifest = json.loads(json.dumps(original))
    manifest["interpreter"]["tracecore_version"] = "0.9.5"
    manifest_path.write_text(json.dumps(manifest))
    done = harness("compare", str(manifest_path), str(runs["base"]), "--format", "json", cwd=runs["work"])
    result = json.loads(done.stdout)
    codes = [n["code"] for n in result["notices"]]
    assert result["machine_class_match"] is True and result["machine_ids"] == [original["machine_class"]] * 2
    assert "runtime_mismatch" in codes and "machine_class_mismatch" not in codes and "TraceCore 0.9.5 vs" in done.stderr


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda m: m["settings"].update(workers=8), "workers 8 vs 2"),
        (lambda m: m["settings"].update(isolation="spawn"), "isolation spawn vs forkserver"),
        (lambda m: m["settings"].update(strict_spec=not m["settings"]["strict_spec"]), "strict spec"),
        (lambda m: m["settings"].update(sandbox=True), "sandbox True vs False"),
        (lambda m: m["scenario"][0].update(seed=99), "scenario rows 1 vs 1; only the baseline has"),
        (lambda m: m["scenario"].append({**m["scenario"][0], "seed": 5}), "scenario rows 2 vs 1"),
    ],
    ids=["workers", "isolation", "strict-spec", "sandbox", "scenario-seed", "scenario-extra-row"],
)
def test_runs_set_up_differently_are_refused_in_one_line(runs, tmp_path, edit, named):
    manifest_path = _copy_run(runs["base"], tmp_path)
    manifest = json.loads(manifest_path.read_text())
    edit(manifest)
    manifest_path.write_text(json.dumps(manifest))
    done = harness("compare", str(manifest_path), str(runs["base"]), cwd=runs["work"])
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert "set up differently" in line and named in line and "--allow-setup-mismatch" in line
    allowed = ("--allow-setup-mismatch", "--format", "json")
    done = harness("compare", str(manifest_path), str(runs["base"]), *allowed, cwd=runs["work"])
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["setup_match"] is False and any(named in d for d in result["setup_differences"])
    assert "WARNING: SET-UP MISMATCH" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--margin", "1.5"], "argument --margin: must be between 0 and 1"),
        (["--drift", "2"], "argument --drift: must be between 0 and 1"),
        (["--alpha", "0"], "argument --alpha: must be above 0"),
        (["--metric", "speed"], "invalid choice: 'speed'"),
        (["--fail-on", "sometimes"], "invalid choice: 'sometimes'"),
    ],
)
def test_bad_flags_are_one_line_exit_2(runs, args, message):
    done = harness("compare", str(runs["base"]), str(runs["heavy"]), *args, cwd=runs["work"])
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert message in line


def test_a_missing_run_is_one_line_exit_2(runs, tmp_path):
    done = harness("compare", str(runs["base"]), str(tmp_path), cwd=runs["work"])
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "holds no published run" in line  # a folder that is no run and holds none
