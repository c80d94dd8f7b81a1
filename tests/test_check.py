"""`python -m tracecore_perf check RUN`: the seed guide's thresholds on real runs, overrides
from pyproject.toml and --thresholds, every output format, bad input, and `run --check`."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from runs import check_json, fixture_agent, real_run

from tracecore_perf.check import Thresholds, after_run, evaluate, load_thresholds
from tracecore_perf.loadrun import locate
from tracecore_perf.trends import CHECKS

from conftest import harness

THRESHOLD_NAMES = ["failure_count", "max_wall_clock_s", "run_artifacts.total_bytes", "run_artifacts.avg_bytes", "failure_reasons"]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("check")


@pytest.fixture(scope="module")
def healthy(work) -> Path:
    return real_run(work, "healthy", [], 8)


@pytest.fixture(scope="module")
def failing(work) -> Path:
    return real_run(work, "failing", [fixture_agent("raising_agent")], 3)


def _elsewhere(tmp_path: Path, pyproject: str | None = None) -> Path:
    """A working directory of its own (check reads pyproject.toml from the cwd)."""
    if pyproject is not None:
        (tmp_path / "pyproject.toml").write_text(pyproject)
    return tmp_path


def test_a_healthy_run_passes_every_seed_threshold(work, healthy):
    done = harness("check", str(healthy), cwd=work)
    assert done.returncode == 0, done.stderr
    assert "PASS" in done.stdout.splitlines()[0]
    code, verdict = check_json(work, str(healthy), "--no-trends")
    assert verdict["ok"] is True and verdict["stamp"] in healthy.name
    assert [t["name"] for t in verdict["thresholds"]] == THRESHOLD_NAMES
    assert all(t["ok"] for t in verdict["thresholds"])
    limits = {t["name"]: t["limit"] for t in verdict["thresholds"]}
    assert limits["failure_count"] == 0 and limits["max_wall_clock_s"] == 15
    assert limits["run_artifacts.total_bytes"] == 2_000_000 and limits["run_artifacts.avg_bytes"] == 150_000


@pytest.mark.parametrize("ref", ["run_dir", "stamp", "summary"])
def test_run_named_by_stamp_directory_or_summary(work, healthy, ref):
    stamp = healthy.name.removeprefix("run-")
    arg = {
        "run_dir": [str(healthy)],
        "stamp": [stamp, "--search-dir", str(healthy.parent)],
        "summary": [str(healthy.parent / f"perf-summary-{stamp}.json")],
    }[ref]
    assert harness("check", *arg, "--no-trends", cwd=work).returncode == 0


def test_a_failing_run_breaks_failure_count_and_failure_reasons(work, failing):
    code, verdict = check_json(work, str(failing))
    assert code == 1 and verdict["ok"] is False
    broken = sorted(t["name"] for t in verdict["thresholds"] if not t["ok"])
    assert broken == ["failure_count", "failure_reasons"]
    reasons = next(t for t in verdict["thresholds"] if t["name"] == "failure_reasons")
    assert reasons["actual"] == ["RuntimeError: fixture agent exploded on purpose"]


def test_failure_reasons_allowed_by_category_or_by_the_baseline(failing):
    run = locate(failing)
    relaxed = Thresholds(max_failure_count=5, trends=False)
    assert not evaluate(run, relaxed).ok
    by_category = Thresholds(max_failure_count=5, allowed_failure_reasons=["RuntimeError"], trends=False)
    assert evaluate(run, by_category).ok
    assert evaluate(run, relaxed, reference=run).ok  # the baseline's own reasons are allowed


def test_thresholds_file_forms(tmp_path):
    """Keys at top level, under [thresholds], or in a pyproject-style file."""
    for text in (
        "max_wall_clock_s = 3\n",
        "[thresholds]\nmax_wall_clock_s = 3\n",
        "[tool.tracecore_perf.thresholds]\nmax_wall_clock_s = 3\n",
    ):
        (tmp_path / "t.toml").write_text(text)
        assert load_thresholds(tmp_path / "t.toml", cwd=tmp_path).max_wall_clock_s == 3.0
    assert load_thresholds(None, cwd=tmp_path) == Thresholds()


def test_pyproject_overrides_and_the_thresholds_file_overrides_pyproject(healthy, tmp_path):
    cwd = _elsewhere(tmp_path, "[tool.tracecore_perf.thresholds]\nmax_wall_clock_s = 0.000001\n")
    code, verdict = check_json(cwd, str(healthy), "--no-trends")
    assert code == 1 and verdict["findings"] == [] and verdict["trend_checks"] == []
    wall = next(t for t in verdict["thresholds"] if t["name"] == "max_wall_clock_s")
    assert wall["ok"] is False and wall["limit"] == 0.000001
    (cwd / "relaxed.toml").write_text("max_wall_clock_s = 60\n")
    assert harness("check", str(healthy), "--thresholds", "relaxed.toml", "--no-trends", cwd=cwd).returncode == 0


def test_github_format_annotates_and_appends_the_step_summary(healthy, tmp_path):
    cwd = _elsewhere(tmp_path, "[tool.tracecore_perf.thresholds]\nmax_wall_clock_s = 0.000001\n")
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n")
    env = {"GITHUB_STEP_SUMMARY": str(summary)}
    done = harness("check", str(healthy), "--format", "github", "--no-trends", cwd=cwd, env=env)
    assert done.returncode == 1
    errors = [line for line in done.stdout.splitlines() if line.startswith("::error ")]
    assert len(errors) == 1 and "max_wall_clock_s" in errors[0]
    text = summary.read_text()
    assert text.startswith("earlier step\n")  # appended, not overwritten
    assert "| ❌ | thresholds: max_wall_clock_s |" in text
    assert "| ✅ | thresholds: failure_count |" in text


def test_github_format_without_step_summary_still_annotates(work, failing):
    done = harness("check", str(failing), "--format", "github", "--no-trends", cwd=work, env={"GITHUB_STEP_SUMMARY": ""})
    assert done.returncode == 1
    assert sum(line.startswith("::error ") for line in done.stdout.splitlines()) == 2


def test_junit_report_next_to_the_run_and_at_a_given_path(work, failing, tmp_path):
    done = harness("check", str(failing), "--format", "junit", cwd=work)
    assert done.returncode == 1
    stamp = failing.name.removeprefix("run-")
    default = failing.parent / f"perf-check-{stamp}.junit.xml"
    root = ET.parse(default).getroot()
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert set(THRESHOLD_NAMES) | (set(CHECKS) - {"success_rate_shift"}) <= set(cases)  # that one needs --baseline
    assert cases["failure_count"].find("failure") is not None
    assert cases["max_wall_clock_s"].find("failure") is None
    assert root.get("failures") == "2"
    chosen = tmp_path / "results.xml"
    done = harness("check", str(failing), "--format", "junit", "--junit-file", str(chosen), "--no-trends", cwd=work)
    assert done.returncode == 1
    assert ET.parse(chosen).getroot().get("failures") == "2"
    assert not set(CHECKS) & {c.get("name") for c in ET.parse(chosen).getroot().iter("testcase")}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("max_wall_clok_s = 1\n", "unknown field `max_wall_clok_s`"),
        ('max_wall_clock_s = "fast"\n', "Expected `float`, got `str`"),
        ("max_failure_count = -1\n", "Expected `int` >= 0"),
        ("allowed_failure_reasons = 3\n", "Expected `array`, got `int`"),
        ("max_wall_clock_s = \n", "not valid TOML"),
    ],
)
def test_bad_thresholds_file_is_one_line_exit_2_nothing_written(healthy, tmp_path, content, message):
    (tmp_path / "limits.toml").write_text(content)
    junit = tmp_path / "out.xml"
    done = harness(
        "check", str(healthy), "--thresholds", "limits.toml", "--format", "junit", "--junit-file", str(junit), cwd=tmp_path
    )
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert message in line and "limits.toml" in line
    assert not junit.exists()


def test_bad_pyproject_thresholds_name_the_table(healthy, tmp_path):
    cwd = _elsewhere(tmp_path, "[tool.tracecore_perf.thresholds]\nmax_episodes = 3\n")
    done = harness("check", str(healthy), cwd=cwd)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "[tool.tracecore_perf.thresholds]" in line and "max_episodes" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["20990101T000000Z"], "has no published manifest"),
        (["not-a-run"], "no such run"),
        (["--thresholds", "missing.toml", "RUN"], "thresholds file not found"),
        (["RUN", "--format", "xml"], "invalid choice: 'xml'"),
        (["RUN", "--format", "junit", "--junit-file", "no/such/dir/out.xml"], "--junit-file must be a file"),
        ([], "the following arguments are required: run"),
    ],
)
def test_bad_arguments_are_one_line_exit_2(healthy, tmp_path, args, message):
    args = [str(healthy) if a == "RUN" else a for a in args]
    done = harness("check", *args, "--search-dir", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert message in line


def test_run_with_check_fails_on_a_broken_threshold(tmp_path):
    cwd = _elsewhere(tmp_path, "[tool.tracecore_perf.thresholds]\nmax_wall_clock_s = 0.000001\n")
    done = harness("--episodes", "4", "--workers", "2", "--no-progress", "--output-dir", "out", "--check", cwd=cwd)
    assert done.returncode == 1  # every episode succeeded; the check did not
    assert "FAIL max_wall_clock_s" in done.stdout


def test_run_check_with_json_puts_the_verdict_in_the_payload(healthy):
    payload: dict = {}
    code = after_run(healthy.name.removeprefix("run-"), healthy.parent, Thresholds(max_wall_clock_s=0.000001), payload)
    assert code == 1 and payload["check"]["ok"] is False
    assert {t["name"] for t in payload["check"]["thresholds"] if not t["ok"]} == {"max_wall_clock_s"}


def test_run_with_check_and_bad_thresholds_starts_nothing(tmp_path):
    cwd = _elsewhere(tmp_path, "[tool.tracecore_perf.thresholds]\nmax_wall_clock_s = [1]\n")
    done = harness("--episodes", "4", "--output-dir", "out", "--check", cwd=cwd)
    assert done.returncode == 2
    assert "max_wall_clock_s" in done.stderr
    assert not (cwd / "out").exists()
