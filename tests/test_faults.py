"""Issue: unattended runs survive any agent. One run mixes every misbehaving fixture agent
with healthy TraceCore episodes; each gets exactly one row saying what happened, and no
process of any episode is left on the machine afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import AGENTS, harness, leftover_processes, published, scenario_file

pytestmark = pytest.mark.slow  # every test here runs the harness: real episodes

TIMEOUT = 8  # generous: healthy episodes (and the 500 MB one) stay far below it even on a loaded host
HEALTHY = {"agent": "agents/toy_agent.py", "task_ref": "filesystem_hidden_config@1", "seed": 1}
FAULTY = [
    "hanging_agent",
    "sigterm_ignoring_agent",
    "raising_agent",
    "abort_agent",
    "segfault_agent",
    "exit3_agent",
    "flooding_agent",
    "grandchild_agent",
    "memory_hog_agent",
    "forging_agent",
]


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("faults")
    rows = []
    for name in FAULTY:  # each fault between two healthy episodes
        rows += [HEALTHY, {"agent": str(AGENTS / f"{name}.py"), "task_ref": "filesystem_hidden_config@1", "seed": 1}]
    rows.append(HEALTHY)
    scenario = scenario_file(work / "faults.json", rows)
    done = harness(
        "--scenario", str(scenario), "--episodes", str(len(rows)), "--workers", "4",
        "--timeout", str(TIMEOUT), "--output-dir", str(work / "out"), "--json", "--log-format", "json",
        cwd=work,
    )  # fmt: skip
    series = published(work / "out", "series")
    by_agent = {Path(row["agent"]).stem: row for row in series if "tests/agents" in row["agent"]}
    healthy = [row for row in series if row["agent"] == HEALTHY["agent"]]
    return work, done, series, by_agent, healthy


def test_every_episode_gets_exactly_one_row_and_the_run_exits_1(fault_run):
    work, done, series, by_agent, healthy = fault_run
    assert done.returncode == 1, done.stderr
    assert [row["episode_index"] for row in series] == list(range(2 * len(FAULTY) + 1))
    # one summary of the failures on the console; the per-episode lines only in harness.log
    failed = sum(not row["success"] for row in series)
    assert f"tracecore-perf: {failed} episodes failed: " in done.stderr, done.stderr[-2000:]
    assert '"episode.failed"' not in done.stderr
    run_log = (next((work / "out").glob("run-*")) / "harness.log").read_text()
    assert run_log.count('"episode.failed"') == failed
    assert set(by_agent) == set(FAULTY)
    assert all(row["success"] for row in healthy)
    assert len((next((work / "out").glob("run-*")) / "series.jsonl").read_text().splitlines()) == len(series)


@pytest.mark.parametrize("name", ["hanging_agent", "sigterm_ignoring_agent", "grandchild_agent"])
def test_hangs_are_killed_at_the_timeout(fault_run, name):
    row = fault_run[3][name]
    assert row["timed_out"] is True and row["success"] is False
    assert row["error"] == f"timeout: episode exceeded the {TIMEOUT}s limit and was killed"
    # killed (a signal ended it) at the timeout, not before; how soon after depends on the
    # host's load, which no test on a shared host may assert
    assert row["wall_clock_s"] >= TIMEOUT
    assert row["returncode"] < 0


def test_sigterm_is_not_enough_for_an_agent_that_ignores_it(fault_run):
    import signal

    assert fault_run[3]["sigterm_ignoring_agent"]["returncode"] == -signal.SIGKILL
    assert fault_run[3]["hanging_agent"]["returncode"] == -signal.SIGTERM


def test_an_exception_is_recorded_with_type_and_message(fault_run):
    row = fault_run[3]["raising_agent"]
    assert row["error"] == "RuntimeError: fixture agent exploded on purpose"
    assert row["success"] is False and row["timed_out"] is False and row["returncode"] == 0


@pytest.mark.parametrize(
    ("name", "returncode", "how"),
    [("abort_agent", -6, "killed by signal SIGABRT"), ("segfault_agent", -11, "killed by signal SIGSEGV"),
     ("exit3_agent", 3, "exit code 3")],
)  # fmt: skip
def test_hard_deaths_are_recorded_with_signal_or_exit_code(fault_run, name, returncode, how):
    row = fault_run[3][name]
    assert row["returncode"] == returncode
    assert row["error"].startswith("crashed: episode process died before reporting, " + how)
    assert row["timed_out"] is False and row["wall_clock_s"] < TIMEOUT


def test_a_flood_of_output_is_kept_capped_without_corrupting_the_result(fault_run):
    work, *_ = fault_run
    row = fault_run[3]["flooding_agent"]
    assert row["success"] is True and row["error"] is None  # the episode itself is fine
    assert row["output_bytes"] >= 20 * 1024 * 1024
    log = next((work / "out").glob("run-*")) / "logs" / f"episode-{row['episode_index']:06d}.log"
    text = log.read_bytes()
    assert 1024 * 1024 <= len(text) < 1024 * 1024 + 200
    assert b"output capped" in text[-120:]


def test_a_grandchild_that_outlives_its_episode_is_gone(fault_run):
    work, *_ = fault_run
    assert leftover_processes(work) == []


def test_500_mb_shows_in_max_rss_and_the_run_goes_on(fault_run):
    row = fault_run[3]["memory_hog_agent"]
    assert row["success"] is True
    assert row["max_rss_bytes"] >= 500 * 1024 * 1024
    assert all(r["max_rss_bytes"] < 200 * 1024 * 1024 for r in fault_run[4])


def test_printing_a_result_cannot_forge_the_row(fault_run):
    work, *_ = fault_run
    row = fault_run[3]["forging_agent"]
    assert row["success"] is False and row["error"] == "RuntimeError: forger failed for real"
    log = next((work / "out").glob("run-*")) / "logs" / f"episode-{row['episode_index']:06d}.log"
    assert b'"success": true' in log.read_bytes()  # it did print the forgery


def test_healthy_episodes_keep_normal_latency(fault_run):
    healthy = fault_run[4]
    assert all(row["timed_out"] is False and row["wall_clock_s"] < TIMEOUT for row in healthy)


def test_summary_counts_the_faults(fault_run):
    work, done, *_ = fault_run
    summary = json.loads(done.stdout)["summary"]
    assert summary["failure_count"] == 8 and summary["timed_out_count"] == 3
    assert summary["failure_reasons"]["RuntimeError: fixture agent exploded on purpose"] == 1
