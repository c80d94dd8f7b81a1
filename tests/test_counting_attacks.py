"""Under --instructions no agent can switch its count off, shrink it, hide work from it or
forge it, and no verdict is drawn from a count that is no figure.

One counted run holds the honest toy agent beside fixtures that zero, toggle, dump and stop
callgrind's counting through client requests from inside their episodes, plant a forged count
file, and hand work to processes of their own (``tests/agents/valgrind_request_agent.py``,
``count_planting_agent.py``, ``process_starting_agent.py``). Asserted on the published run,
and on what ``compare`` says of it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import AGENTS, harness, published, run_watched, scenario_file, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("valgrind") is None, reason="--instructions needs valgrind"),
    pytest.mark.skipif(os.uname().machine != "x86_64", reason="the client-request fixture is x86_64 machine code"),
]

TASK = "filesystem_hidden_config@1"
HOSTILE = {
    "zero_stats_agent": "valgrind_request_agent",
    "toggle_collect_agent": "valgrind_request_agent",
    "dump_stats_agent": "valgrind_request_agent",
    "stop_instrumentation_agent": "valgrind_request_agent",
    "count_planting_agent": "count_planting_agent",
    "process_starting_agent": "process_starting_agent",
    "calibration_poisoning_agent": "calibration_poisoning_agent",
    "count_forging_agent": "count_forging_agent",
    "check_time_planting_agent": "check_time_planting_agent",
    "check_time_zygote_killing_agent": "check_time_zygote_killing_agent",
}


@pytest.fixture(scope="module")
def counted(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("counted")
    (work / "agents").mkdir()
    for name, source in HOSTILE.items():
        shutil.copy(AGENTS / f"{source}.py", work / "agents" / f"{name}.py")
    shutil.copy(AGENTS / "valgrind_request_agent.py", work / "agents")  # calibration_poisoning_agent's requests
    rows = [{"agent": "agents/toy_agent.py", "task_ref": TASK, "seed": 1}]
    rows += [{"agent": f"agents/{name}.py", "task_ref": TASK, "seed": 1} for name in HOSTILE]
    scenario = scenario_file(work / "s.json", rows)
    done = harness("--episodes", str(2 * len(rows)), "--workers", "2", "--instructions", "--no-progress",
                   "--output-dir", "out", "--scenario", str(scenario), cwd=work,
                   env={"HOSTILE_FLAG": str(work / "poisoned"), "HOSTILE_PLANTED_FLAG": str(work / "planted")})  # fmt: skip
    out = work / "out"
    series = published(out, "series")
    by_agent: dict[str, list[dict]] = {}
    for row in series:
        by_agent.setdefault(Path(row["agent"]).stem, []).append(row)
    return {"done": done, "work": work, "out": out, "rows": by_agent, "manifest": published(out, "manifest")}


@pytest.mark.long
def test_the_honest_rows_are_counted_and_the_run_is_clean(counted: dict):
    """The toy rows, and the rows of agents whose module planted links at the count files of
    every pid to come, or killed the zygote, when it was checked: counted, as the toy is."""
    assert counted["done"].returncode == 1, counted["done"].stderr[-2000:]  # failed rows, not a tainted run
    integrity = published(counted["out"], "summary")["integrity"]
    assert integrity["clean"] is True, integrity
    assert (counted["work"] / "poisoned").exists()  # the poisoning episode did its part
    assert (counted["work"] / "planted").exists()  # and the planting module, when it was checked
    honest = [row for name in ("toy_agent", "check_time_planting_agent", "check_time_zygote_killing_agent")
              for row in counted["rows"][name]]  # fmt: skip
    seen = [(row["agent"], row["success"], row["instructions"], row["error"]) for row in honest]
    assert len(honest) == 6 and all(row["success"] and row["instructions"] > 10_000_000 for row in honest), seen
    toy = sorted(row["instructions"] for row in counted["rows"]["toy_agent"])
    assert toy[-1] / toy[0] < 1.001, toy  # the same work, the same count


@pytest.mark.parametrize(
    "agent", ["zero_stats_agent", "toggle_collect_agent", "stop_instrumentation_agent", "calibration_poisoning_agent"]
)
def test_counting_switched_off_from_inside_the_episode_is_no_figure(counted: dict, agent: str):
    """calibration_poisoning_agent also killed its zygote after planting links where the next
    zygote's calibration would write its count: the new zygote calibrates all the same."""
    for row in counted["rows"][agent]:
        assert not row["success"] and row["instructions"] is None, row
        assert row["error"].startswith("uncounted: "), row["error"]


def test_counts_dumped_mid_episode_are_no_figure(counted: dict):
    for row in counted["rows"]["dump_stats_agent"]:
        assert not row["success"] and row["instructions"] is None, row
        assert "dump its counts before its end" in row["error"], row["error"]


def test_a_count_file_planted_at_its_name_is_never_taken(counted: dict):
    for row in counted["rows"]["count_planting_agent"]:
        assert not row["success"] and row["instructions"] is None, row
        assert "its count file was replaced" in row["error"], row["error"]


def test_a_count_forged_in_valgrinds_own_memory_is_no_figure(counted: dict):
    for row in counted["rows"]["count_forging_agent"]:
        assert not row["success"] and row["instructions"] is None, row
        assert "lines added to its header" in row["error"], row["error"]


def test_an_episode_cannot_hand_its_work_to_a_process_of_its_own(counted: dict):
    for row in counted["rows"]["process_starting_agent"]:
        assert not row["success"], row  # the fork is refused: the agent fails, its work is all in its count
        assert "PermissionError" in row["error"] and "Operation not permitted" in row["error"], row["error"]


def test_compare_draws_no_verdict_from_a_count_that_is_no_figure(counted: dict):
    summary = next(counted["out"].glob("perf-summary-*.json"))
    done = run_watched([sys.executable, "-m", "tracecore_perf", "compare", str(summary), str(summary),
                           "--metric", "instructions", "--fail-on", "regression"],
                          capture_output=True, text=True, cwd=counted["work"])  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stdout + done.stderr
    assert "no instruction verdict where a count is no figure" in lines[0] and "zero_stats_agent" in lines[0], lines[0]


def _recv_or_none(sock) -> bytes | None:
    try:
        return sock.recv(4096)
    except TimeoutError:
        return None


def test_callgrind_control_cannot_reach_a_counted_zygote(tmp_path: Path):
    """``callgrind_control -i off PID`` (through vgdb) finds no counted process of ours to talk
    to, where it finds one valgrind runs with its defaults."""
    if shutil.which("callgrind_control") is None:
        pytest.skip("callgrind_control not installed")
    from tracecore_perf.run.spawn import spawn_zygote

    # the counts in this test's own folder: a calibration child of the zygote still writing its
    # count as the zygote is killed below may leave a file there, which is no leftover of the suite
    counts = tmp_path / "counts"
    counts.mkdir()
    zygote = spawn_zygote(sys.executable, "forkserver", str(counts))
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # where vgdb's FIFOs go, and where callgrind_control looks
    default = subprocess.Popen(["valgrind", "-q", "--tool=callgrind", f"--callgrind-out-file={tmp_path}/default.%p",
                                sys.executable, "-c", "import sys; print('up', flush=True); sys.stdin.read()"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)  # fmt: skip
    try:
        zygote.control.settimeout(1.0)  # the zygote greets once it is up under valgrind, however long that takes
        greeting = wait_for(lambda: _recv_or_none(zygote.control), proc=zygote.process, what="the zygote's greeting")
        assert b"ready" in greeting
        assert default.stdout.readline() == b"up\n"
        ours = run_watched(["callgrind_control", "-i", "off", str(zygote.process.pid)],
                           capture_output=True, text=True, env=env)  # fmt: skip
        theirs = run_watched(["callgrind_control", "-s", str(default.pid)],
                             capture_output=True, text=True, env=env)  # fmt: skip
        assert "not detected" in ours.stdout + ours.stderr, ours.stdout + ours.stderr
        assert "not detected" not in theirs.stdout + theirs.stderr, theirs.stdout + theirs.stderr
    finally:
        zygote.discard()
        default.kill()
        default.wait()
