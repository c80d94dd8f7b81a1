"""`python -m tracecore_perf check RUN`: TraceCore's performance guide's thresholds on real runs, overrides
from pyproject.toml and --thresholds, every output format, bad input, and `run --check`."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from runs import check_json, fixture_agent, real_run

from tracecore_perf.published import locate
from tracecore_perf.verdicts.check import Thresholds, default_total_bytes_limit, evaluate, load_thresholds
from tracecore_perf.verdicts.trends import CHECKS

from conftest import harness

THRESHOLD_NAMES = [
    "failure_count",
    "max_wall_clock_s",
    "run_artifacts.total_bytes",
    "run_artifacts.avg_bytes",
    "integrity.clean",
    "failure_reasons",
]


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


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.parametrize("ref", ["run_dir", "stamp", "summary"])
def test_run_named_by_stamp_directory_or_summary(work, healthy, ref):
    stamp = healthy.name.removeprefix("run-")
    arg = {
        "run_dir": [str(healthy)],
        "stamp": [stamp, "--search-dir", str(healthy.parent)],
        "summary": [str(healthy.parent / f"perf-summary-{stamp}.json")],
    }[ref]
    assert harness("check", *arg, "--no-trends", cwd=work).returncode == 0


@pytest.mark.slow
def test_a_failing_run_breaks_failure_count_and_failure_reasons(work, failing):
    code, verdict = check_json(work, str(failing))
    assert code == 1 and verdict["ok"] is False
    broken = sorted(t["name"] for t in verdict["thresholds"] if not t["ok"])
    assert broken == ["failure_count", "failure_reasons"]
    reasons = next(t for t in verdict["thresholds"] if t["name"] == "failure_reasons")
    assert reasons["actual"] == ["RuntimeError: fixture agent exploded on purpose"]


@pytest.mark.slow
def test_failure_reasons_allowed_by_category_or_by_the_baseline(failing):
    run = locate(failing)
    relaxed = Thresholds(max_failure_count=5, trends=False)
    assert not evaluate(run, relaxed).ok
    by_category = Thresholds(max_failure_count=5, allowed_failure_reasons=["RuntimeError"], trends=False)
    assert evaluate(run, by_category).ok
    assert evaluate(run, relaxed, baseline=run).ok  # the baseline's own reasons are allowed


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


@pytest.mark.slow
def test_pyproject_overrides_and_the_thresholds_file_overrides_pyproject(healthy, tmp_path):
    cwd = _elsewhere(tmp_path, "[tool.tracecore_perf.thresholds]\nmax_wall_clock_s = 0.000001\n")
    code, verdict = check_json(cwd, str(healthy), "--no-trends")
    assert code == 1 and verdict["findings"] == [] and verdict["trend_checks"] == []
    wall = next(t for t in verdict["thresholds"] if t["name"] == "max_wall_clock_s")
    assert wall["ok"] is False and wall["limit"] == 0.000001
    (cwd / "relaxed.toml").write_text("max_wall_clock_s = 60\n")
    assert harness("check", str(healthy), "--thresholds", "relaxed.toml", "--no-trends", cwd=cwd).returncode == 0


@pytest.mark.slow
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


@pytest.mark.slow
def test_github_format_without_step_summary_still_annotates(work, failing):
    done = harness("check", str(failing), "--format", "github", "--no-trends", cwd=work, env={"GITHUB_STEP_SUMMARY": ""})
    assert done.returncode == 1
    assert sum(line.startswith("::error ") for line in done.stdout.splitlines()) == 2


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_bad_pyproject_thresholds_name_the_table(healthy, tmp_path):
    cwd = _elsewhere(tmp_path, "[tool.tracecore_perf.thresholds]\nmax_episodes = 3\n")
    done = harness("check", str(healthy), cwd=cwd)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "[tool.tracecore_perf.thresholds]" in line and "max_episodes" in line


@pytest.mark.slow
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


@pytest.mark.slow
def test_run_with_check_fails_on_a_broken_threshold(tmp_path):
    cwd = _elsewhere(tmp_path, "[tool.tracecore_perf.thresholds]\nmax_wall_clock_s = 0.000001\n")
    done = harness("--episodes", "4", "--workers", "2", "--no-progress", "--output-dir", "out", "--check", cwd=cwd)
    assert done.returncode == 1  # every episode succeeded; the check did not
    assert "FAIL max_wall_clock_s" in done.stdout


@pytest.mark.slow
def test_run_check_with_json_puts_the_verdict_in_the_payload(tmp_path):
    cwd = _elsewhere(tmp_path, "[tool.tracecore_perf.thresholds]\nmax_wall_clock_s = 0.000001\n")
    done = harness("--episodes", "4", "--workers", "2", "--output-dir", "out", "--check", "--json", cwd=cwd)
    assert done.returncode == 1, done.stderr[-2000:]  # every episode succeeded; the check did not
    payload = json.loads(done.stdout)
    assert payload["ok"] is True and payload["check"]["ok"] is False
    assert {t["name"] for t in payload["check"]["thresholds"] if not t["ok"]} == {"max_wall_clock_s"}


@pytest.mark.slow
def test_run_with_check_and_bad_thresholds_starts_nothing(tmp_path):
    cwd = _elsewhere(tmp_path, "[tool.tracecore_perf.thresholds]\nmax_wall_clock_s = [1]\n")
    done = harness("--episodes", "4", "--output-dir", "out", "--check", cwd=cwd)
    assert done.returncode == 2
    assert "max_wall_clock_s" in done.stderr
    assert not (cwd / "out").exists()


# --- the total-bytes threshold scales past the slice; an explicit one is absolute --------


def test_the_seeds_total_bytes_threshold_is_per_slice_and_scales_with_episodes():
    assert default_total_bytes_limit(1) == default_total_bytes_limit(24) == 2_000_000
    assert default_total_bytes_limit(300) == 25_000_000
    assert default_total_bytes_limit(1000) == 83_333_333


def _as_if(healthy: Path, target: Path, **summary_fields) -> Path:
    """The healthy run's artifacts in ``target`` with summary fields replaced."""
    stamp = healthy.name.removeprefix("run-")
    for path in healthy.parent.glob(f"perf-*-{stamp}.json"):
        shutil.copy(path, target / path.name)
    summary_path = target / f"perf-summary-{stamp}.json"
    summary = json.loads(summary_path.read_text())
    for key, value in summary_fields.items():
        section, _, field = key.partition("__")
        if field:
            summary[section][field] = value
        else:
            summary[section] = value
    summary_path.write_text(json.dumps(summary))
    return summary_path


@pytest.mark.slow
def test_a_healthy_300_episode_run_holds_the_default_and_an_explicit_limit_wins(healthy, tmp_path):
    """A long run: 300 episodes, 2.9 MB of run artifacts on disk, ~9.75 KB each."""
    long_run = _as_if(healthy, tmp_path, episodes=300, run_artifacts__total_bytes=2_925_000, run_artifacts__avg_bytes=9750.0)
    code, verdict = check_json(tmp_path, str(long_run), "--no-trends")
    total = next(t for t in verdict["thresholds"] if t["name"] == "run_artifacts.total_bytes")
    assert code == 0 and total["ok"] and total["limit"] == 25_000_000
    assert "scaled to 300 episodes" in total["message"]
    (tmp_path / "strict").mkdir()
    cwd = _elsewhere(tmp_path / "strict", "[tool.tracecore_perf.thresholds]\nmax_run_artifacts_total_bytes = 2000000\n")
    code, verdict = check_json(cwd, str(long_run), "--no-trends")
    total = next(t for t in verdict["thresholds"] if t["name"] == "run_artifacts.total_bytes")
    assert code == 1 and not total["ok"] and total["limit"] == 2_000_000


# --- every trend check in one of three states, in every format -------------------------


@pytest.mark.slow
def test_a_short_run_shows_each_trend_check_as_finding_clear_or_insufficient_data(work, healthy, tmp_path):
    """8 episodes of four rows: too few for the latency and growth checks, which say so (and
    what they need) in every format instead of passing."""
    code, verdict = check_json(work, str(healthy))
    states = {t["code"]: t for t in verdict["trends"]}
    assert set(states) == set(CHECKS) - {"success_rate_shift"}
    assert all(t["state"] in ("finding", "clear", "insufficient data") for t in states.values())
    assert states["late_latency_drift"]["state"] == "insufficient data"
    assert states["late_latency_drift"]["message"] == "needs at least 30 episodes, the run has 8"
    assert states["artifact_growth"]["state"] == "insufficient data" and states["failure_cluster"]["state"] == "clear"

    text = harness("check", str(healthy), cwd=work).stdout
    assert "insufficient data late_latency_drift: needs at least 30 episodes, the run has 8" in text
    assert "clear             failure_cluster: no failed episode to cluster" in text

    summary = tmp_path / "summary.md"
    done = harness("check", str(healthy), "--format", "github", cwd=work, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert any(line.startswith("::notice ") and "late_latency_drift" in line for line in done.stdout.splitlines())
    table = summary.read_text()
    assert "| ➖ | trends: late_latency_drift | insufficient data: needs at least 30 episodes" in table
    assert "| ✅ | trends: failure_cluster | clear: no failed episode to cluster |" in table
    assert "no finding" not in table

    junit = tmp_path / "check.xml"
    harness("check", str(healthy), "--format", "junit", "--junit-file", str(junit), cwd=work)
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    assert cases["late_latency_drift"].find("skipped") is not None
    assert "needs at least 30 episodes" in cases["late_latency_drift"].find("skipped").get("message")
    assert cases["failure_cluster"].find("skipped") is None and cases["failure_cluster"].find("failure") is None
