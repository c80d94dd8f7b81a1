"""What one episode can reach, second round: publishing, artifacts and installed code under
seal, the harness out of reach, memory bounded.

Each test runs the real harness (``test_containment.run_harness``) over a scenario with one
hostile fixture agent among toy episodes, and asserts on what the user sees: the published
files, the exit code, stderr, and the files outside the run the agent aimed at. Each attack
costs only the hostile episode's row, or, where tampering is detected rather than prevented,
the run is published ``tainted`` (exit 4) with its rows as the harness saw them.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from test_containment import (
    HEALTHY,
    KINDS,
    MARKER,
    RAISED,
    TASK,
    Run,
    assert_clean,
    assert_ended_and_published,
    assert_failed_with,
    assert_healthy_rows_succeed,
    hostile,
    rows_by_index,
    run_harness,
)

from conftest import REPO, interpreter_with_own_copies, run_watched

pytestmark = pytest.mark.slow  # every test here runs the harness: real episodes


def published_files(run: Run) -> list[Path]:
    return [path for kind in KINDS for path in run.out.glob(f"perf-{kind}-*.json")]


# --- publishing cannot be redirected, and a planted FIFO cannot hang it -----------------------


@pytest.fixture(scope="module")
def redirect_run(tmp_path_factory) -> tuple[Run, Path]:
    work = tmp_path_factory.mktemp("redirect")
    victim = work / "victim.txt"
    victim.write_text("a file outside the run\n")
    rows = [HEALTHY, HEALTHY, hostile("publish_redirecting_agent"), HEALTHY]
    return run_harness(work, rows, workers=1, env={"HOSTILE_VICTIM": str(victim)}), victim


def test_links_planted_at_published_names_write_nothing_outside_the_run(redirect_run: tuple[Run, Path]):
    run, victim = redirect_run
    assert_ended_and_published(run, exit_code=4)  # links at the published names: set aside, tainted
    assert victim.read_text() == "a file outside the run\n", "publishing wrote through a planted link"
    planted = [p for p in run.out.iterdir() if p.is_symlink()]
    assert planted, "the fixture planted nothing: the test proves nothing"
    for path in published_files(run):
        assert stat.S_ISREG(os.lstat(path).st_mode), f"{path.name} is not a regular file"
    integrity = run.artifact("summary")["integrity"]
    assert any("perf-summary-" in problem for problem in integrity["problems"]), integrity


def test_a_redirected_run_keeps_its_rows(redirect_run: tuple[Run, Path]):
    run, _ = redirect_run
    assert_failed_with(rows_by_index(run)[2], (RAISED,))
    assert_healthy_rows_succeed(run)
    assert run.leftovers == []


@pytest.fixture(scope="module")
def fifo_run(tmp_path_factory) -> Run:
    rows = [HEALTHY, hostile("publish_fifo_agent"), HEALTHY]
    return run_harness(tmp_path_factory.mktemp("fifo"), rows, workers=1)


def test_fifos_at_published_names_neither_hang_nor_lose_the_run(fifo_run: Run):
    run = fifo_run
    assert_ended_and_published(run, exit_code=4)
    for path in published_files(run):
        assert stat.S_ISREG(os.lstat(path).st_mode), f"{path.name} is not a regular file"
    assert_failed_with(rows_by_index(run)[1], (RAISED,))
    assert_healthy_rows_succeed(run)
    aside = Path(run.artifact("summary")["integrity"]["set_aside"])
    assert any(stat.S_ISFIFO(os.lstat(p).st_mode) for p in aside.rglob("perf-*")), "the FIFOs were not set aside"


# --- another episode's artifact rewritten in place ---------------------------------------------


@pytest.fixture(scope="module")
def rewritten_run(tmp_path_factory) -> Run:
    # one worker: the first three episodes' artifacts are in the run when the rewriter acts
    rows = [HEALTHY, HEALTHY, HEALTHY, hostile("artifact_rewriting_agent"), HEALTHY, HEALTHY]
    return run_harness(tmp_path_factory.mktemp("rewritten"), rows, workers=1)


def test_a_rewritten_artifact_taints_the_run(rewritten_run: Run):
    run = rewritten_run
    assert_ended_and_published(run, exit_code=4)
    summary = run.artifact("summary")
    assert summary["status"] == run.artifact("manifest")["status"] == "tainted"
    integrity = summary["integrity"]
    assert integrity["altered_artifacts"] == 3, integrity
    kept = "".join(p.read_text(errors="replace") for p in Path(integrity["set_aside"]).rglob("*.json"))
    assert MARKER in kept, "the rewritten artifacts were not set aside"


def test_no_forged_figure_is_published_as_fact(rewritten_run: Run):
    run = rewritten_run
    by_index = rows_by_index(run)
    assert_failed_with(by_index[3], (RAISED,))
    assert_healthy_rows_succeed(run)  # the rows say what the worker observed
    metrics = json.dumps(run.artifact("metrics"))
    assert "forged_by_fixture" not in metrics and MARKER not in metrics, "TraceCore's metrics read a forged artifact"
    avg = run.artifact("summary")["run_artifacts"]["avg_bytes"]
    assert avg is not None and avg < 100_000, f"the padded artifacts were counted: avg_bytes {avg}"


# --- installed code changed under the run ------------------------------------------------------


@pytest.fixture(scope="module")
def planted_code_run(tmp_path_factory) -> tuple[Run, list[Path]]:
    import agent_bench
    import tasks  # TraceCore's other package: the task's validator decides success

    work = tmp_path_factory.mktemp("planted-code")
    own_agent = work / "my_toy_agent.py"  # an agent file of the user's, in the scenario
    own_agent.write_text((Path(agent_bench.__file__).parent / "agents" / "toy_agent.py").read_text())
    # TraceCore as the episodes load it: copies in a scratch environment, which the agent
    # changes (not the suite's own installation, which other tests are running episodes from)
    python = interpreter_with_own_copies(work, agent_bench, tasks)
    (site,) = python.parents[1].glob("lib/python*/site-packages")
    installed = site / "agent_bench" / "agents" / "toy_agent.py"
    validator = site / "tasks" / TASK.split("@")[0] / "validate.py"
    targets = (own_agent, installed, validator)
    rows = [HEALTHY, {"agent": str(own_agent), "task_ref": TASK, "seed": 1}, hostile("code_planting_agent"), HEALTHY]
    run = run_harness(work, rows, "--python", str(python), workers=1, env={"HOSTILE_TARGETS": os.pathsep.join(map(str, targets))})
    changed = [path for path in targets if MARKER in path.read_text()]
    return run, changed


def test_changed_agent_and_tracecore_files_taint_the_run_and_are_named(planted_code_run: tuple[Run, list[Path]]):
    run, changed = planted_code_run
    assert len(changed) == 3, "the fixture changed nothing: the test proves nothing"
    assert_ended_and_published(run, exit_code=4)
    integrity = run.artifact("summary")["integrity"]
    assert run.artifact("summary")["status"] == "tainted"
    for path in changed:
        assert any(str(path) in problem for problem in integrity["problems"]), (path, integrity["problems"])
    assert_failed_with(rows_by_index(run)[2], (RAISED,))


def test_code_changed_as_an_agent_is_first_imported_taints_the_run(tmp_path: Path):
    import agent_bench

    own_agent = tmp_path / "my_toy_agent.py"
    own_agent.write_text((Path(agent_bench.__file__).parent / "agents" / "toy_agent.py").read_text())
    flag = tmp_path / "planted"
    rows = [{"agent": str(own_agent), "task_ref": TASK, "seed": 1}, hostile("import_time_planting_agent"), HEALTHY]
    run = run_harness(tmp_path, rows, workers=1, env={"HOSTILE_TARGETS": str(own_agent), "HOSTILE_FLAG": str(flag)})
    assert flag.exists() and MARKER in own_agent.read_text(), "the fixture changed nothing: the test proves nothing"
    assert_ended_and_published(run, exit_code=4)  # the code was sealed before any agent's module ran
    assert any(str(own_agent) in problem for problem in run.artifact("summary")["integrity"]["problems"])


@pytest.fixture(scope="module")
def replaced_after_planting_run(tmp_path_factory) -> tuple[Run, Path]:
    work = tmp_path_factory.mktemp("planted-then-killed")
    own_agent = work / "my_toy_agent.py"
    import agent_bench

    own_agent.write_text((Path(agent_bench.__file__).parent / "agents" / "toy_agent.py").read_text())
    rows = [
        {"agent": str(own_agent), "task_ref": TASK, "seed": 1},
        hostile("code_planting_agent"),
        hostile("zygote_killing_agent"),
        HEALTHY,
        HEALTHY,
        HEALTHY,
    ]
    return run_harness(work, rows, workers=1, env={"HOSTILE_TARGETS": str(own_agent)}), own_agent


def test_no_episode_interpreter_is_started_from_changed_code(replaced_after_planting_run: tuple[Run, Path]):
    run, own_agent = replaced_after_planting_run
    assert MARKER in own_agent.read_text(), "the fixture changed nothing: the test proves nothing"
    assert run.finished and run.runaway == 0, run.tail()
    assert "Traceback" not in run.stderr, run.tail()
    assert run.returncode == 4, run.tail()
    summary = run.artifact("summary")
    assert summary is not None and summary["status"] == "tainted", run.tail()
    assert any(str(own_agent) in problem for problem in summary["integrity"]["problems"]), summary["integrity"]
    # after the zygote was lost, nothing ran from the changed code (the killer, lost with its
    # zygote, may have no row: it would have run again from the changed code)
    indices = {row["episode_index"] for row in run.artifact("series")}
    assert {0, 1} <= indices <= {0, 1, 2}, indices
    assert str(own_agent) in run.stderr, run.tail()
    assert run.leftovers == []


# --- the harness out of an episode's reach -----------------------------------------------------


@pytest.fixture(scope="module")
def grandparent_run(tmp_path_factory) -> Run:
    # "kill my grandparent", three times, two workers: the first kill takes the zygote; no
    # later one may reach the harness
    killer = hostile("grandparent_killing_agent")
    rows = [HEALTHY, killer, HEALTHY, HEALTHY, killer, HEALTHY, HEALTHY, killer, HEALTHY, HEALTHY]
    return run_harness(tmp_path_factory.mktemp("grandparent"), rows, workers=2)


def test_killing_the_grandparent_again_and_again_never_reaches_the_harness(grandparent_run: Run):
    run = grandparent_run
    assert_ended_and_published(run, exit_code=1)
    assert_clean(run)
    by_index = rows_by_index(run)
    for index, row in enumerate(run.rows):
        if row == hostile("grandparent_killing_agent"):
            assert_failed_with(by_index[index], ("worker failed:", "crashed:", RAISED))
    assert_healthy_rows_succeed(run)
    assert run.leftovers == []
    assert not list((run.work / "tmp").glob("tracecore-perf-*")), "scratch directories left behind"


@pytest.fixture(scope="module")
def limited_run(tmp_path_factory) -> Run:
    rows = [HEALTHY, hostile("harness_limiting_agent"), HEALTHY, HEALTHY, HEALTHY]
    return run_harness(tmp_path_factory.mktemp("limited"), rows, workers=1)


def test_limits_lowered_on_the_harness_cost_only_the_row(limited_run: Run):
    run = limited_run
    assert_ended_and_published(run, exit_code=1)
    assert_clean(run)
    assert_failed_with(rows_by_index(run)[1], (RAISED,))
    assert_healthy_rows_succeed(run)
    assert "limited harness" in (run.run_dir / "logs" / "episode-000001.log").read_text(), "the fixture limited nothing"
    assert run.leftovers == []


def test_a_hard_limit_the_harness_cannot_raise_stops_the_run_cleanly_and_resume_finishes_it(tmp_path: Path):
    rows = [HEALTHY, hostile("harness_limiting_agent"), HEALTHY, HEALTHY, HEALTHY]
    run = run_harness(tmp_path, rows, workers=1, env={"HOSTILE_HARD_LIMIT": "1"})
    assert run.finished and "Traceback" not in run.stderr, run.tail()
    assert run.returncode == 3, run.tail()
    stopped = [line for line in run.stderr.splitlines() if line.startswith("tracecore-perf: run stopped:")]
    assert len(stopped) == 1 and "NOFILE 3/3" in stopped[0] and "--resume" in stopped[0], run.tail()
    kept = [json.loads(line) for line in (run.run_dir / "series.jsonl").read_text().splitlines()]
    assert [row["episode_index"] for row in kept] == [0, 1], kept  # the limiter's own row is kept
    resumed = run_watched(
        [sys.executable, "-m", "tracecore_perf", "--resume", str(run.run_dir), "--json", "--no-progress"],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "TMPDIR": str(tmp_path / "tmp")},
    )  # fmt: skip
    assert resumed.returncode == 1, resumed.stderr[-2000:]
    series = json.loads(next(run.out.glob("perf-series-*.json")).read_text())
    assert [row["success"] for row in sorted(series, key=lambda r: r["episode_index"])] == [True, False, True, True, True]


# --- memory bounded ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def memory_run(tmp_path_factory) -> Run:
    rows = [HEALTHY, hostile("memory_flood_agent"), HEALTHY, hostile("oom_score_reporting_agent"), HEALTHY]
    rows += [hostile("memfd_hog_agent"), HEALTHY, hostile("threaded_agent")]
    return run_harness(tmp_path_factory.mktemp("memory"), rows, "--memory-limit", "512MiB", workers=2)


def test_a_threaded_agent_within_the_memory_limit_succeeds(memory_run: Run):
    row = rows_by_index(memory_run)[7]  # 16 threads at once: reserved address space is not memory used
    assert row["success"], row["error"]


@pytest.mark.parametrize(("index", "how"), [(1, "private memory"), (5, "a shared memfd mapping")])
def test_an_episode_over_the_memory_limit_fails_naming_it(memory_run: Run, index: int, how: str):
    run = memory_run
    assert_ended_and_published(run, exit_code=1)
    assert_clean(run)
    row = rows_by_index(run)[index]
    assert_failed_with(row, ("memory limit:",))
    assert "512 MiB" in row["error"], row["error"]
    assert row["max_rss_bytes"] < 1024**3, row  # stopped near the limit, not at 1 or 3 GiB
    assert_healthy_rows_succeed(run)
    assert run.artifact("manifest")["settings"]["memory_limit"] == 512 * 1024**2


def test_episodes_are_the_oom_killers_first_choice_and_carry_the_limit(memory_run: Run):
    row = rows_by_index(memory_run)[3]
    assert row["error"] == f"RuntimeError: oom_score_adj=1000 data_limit={512 * 1024**2}", row["error"]


@pytest.mark.parametrize("size", ["12", "lots", "0", "-5MiB", "2PiB"])
def test_a_bad_memory_limit_is_refused_before_any_episode(tmp_path: Path, size: str):
    run = run_harness(tmp_path, [HEALTHY], "--memory-limit", size, workers=1)
    assert run.returncode == 2, run.tail()
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "--memory-limit" in lines[0], run.stderr
    assert not run.out.exists()


def test_the_default_memory_limit_is_recorded(limited_run: Run):
    manifest = limited_run.artifact("manifest")
    limit = manifest["settings"]["memory_limit"]
    assert isinstance(limit, int) and limit >= 1024**3, limit


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-v"]))


# --- --sandbox: what an episode can still reach -------------------------------------------------


@pytest.fixture(scope="module")
def sandbox_runs(tmp_path_factory) -> dict[bool, Run]:
    """The probing fixture between toy episodes, with and without --sandbox (without, its
    escapes must work: else the sandboxed run's denials prove nothing)."""
    import ctypes
    import socket

    libc = ctypes.CDLL(None, use_errno=True)
    key = 0x54435046 + os.getpid() % 4096  # a System V segment of the host's, made for the probe
    segment = libc.shmget(key, 4096, 0o1600)  # IPC_CREAT | 0600
    assert segment >= 0, os.strerror(ctypes.get_errno())
    runs = {}
    try:
        with socket.create_server(("127.0.0.1", 0)) as server:  # what the episode tries to reach
            port = str(server.getsockname()[1])
            for sandbox in (False, True):
                work = tmp_path_factory.mktemp(f"sandbox-{sandbox}")
                env = {"HOSTILE_PORT": port, "HOSTILE_VICTIM": str(work / "victim.txt"), "HOSTILE_SHM_KEY": str(key)}
                rows = [HEALTHY, hostile("sandbox_probing_agent"), HEALTHY, HEALTHY]
                args = ("--sandbox",) if sandbox else ()
                runs[sandbox] = run_harness(work, rows, *args, workers=2, env=env)
    finally:
        libc.shmctl(segment, 0, None)  # IPC_RMID
    return runs


def probe_findings(run: Run) -> dict:
    error = rows_by_index(run)[1]["error"]
    assert error.startswith("RuntimeError: probe: "), error
    return json.loads(error.removeprefix("RuntimeError: probe: "))


ESCAPES = (
    "run_dir_writable",
    "run_dir_readable",
    "tracecore_writable",
    "outside_writable",
    "scratch_root_writable",
    "host_shared_memory_visible",
)


def test_without_the_sandbox_the_probe_gets_out(sandbox_runs):
    found = probe_findings(sandbox_runs[False])
    assert found["own_scratch_writable"] and found["network"] and found["harness_visible"], found
    assert all(found[name] for name in ESCAPES), found


def test_a_sandboxed_episode_reaches_nothing_but_its_scratch_directory(sandbox_runs):
    run = sandbox_runs[True]
    assert_ended_and_published(run, exit_code=1)
    assert_clean(run)
    found = probe_findings(run)
    assert found["own_scratch_writable"], found
    assert not any(found[name] for name in ESCAPES), found
    assert found["scratch_root_entries"] == 1, found  # its own scratch directory, no sibling's
    assert not found["harness_visible"] and not found["network"] and not found["kernel_log_writable"], found
    assert not list(run.out.glob("run-*/planted-by-fixture.txt")) and not (run.work / "planted-by-fixture.txt").exists()
    assert_healthy_rows_succeed(run)
    assert run.artifact("manifest")["settings"]["sandbox"] is True
    assert run.leftovers == []


def test_sandbox_and_instructions_together_are_refused(tmp_path: Path):
    run = run_harness(tmp_path, [HEALTHY], "--sandbox", "--instructions", workers=1)
    assert run.returncode == 2, run.tail()
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "--sandbox" in lines[0] and "--instructions" in lines[0], run.stderr
    assert not run.out.exists()


# --- third round: what a hostile tester found after the second ---------------------------------


def _victim(work: Path) -> Path:
    folder = work / "victim"
    folder.mkdir()
    (folder / "runs").mkdir()
    (folder / "runs" / "precious.json").write_text("someone's file\n")
    return folder / "victim.txt"


@pytest.mark.parametrize("fixture", ["run_dir_relinking_agent", "agent_bench_relinking_agent"])
def test_a_run_folder_replaced_by_a_link_is_never_written_through(tmp_path: Path, fixture: str):
    victim = _victim(tmp_path)
    before = {p: p.read_bytes() for p in victim.parent.rglob("*") if p.is_file()}
    rows = [HEALTHY, HEALTHY, hostile(fixture), HEALTHY, HEALTHY]
    run = run_harness(tmp_path, rows, workers=1, env={"HOSTILE_VICTIM": str(victim)})
    assert run.finished and "Traceback" not in run.stderr, run.tail()
    assert run.returncode == 4, run.tail()
    assert run.artifact("summary")["status"] == "tainted"
    after = {p for p in victim.parent.rglob("*") if p.is_file()}
    moved_in_by_the_fixture = {p for p in after if p not in before}  # its own links and moves
    written = [p for p in moved_in_by_the_fixture if p.name in ("manifest.json", "harness.log") or "logs" in p.parts]
    assert not written, f"the harness wrote through the link: {written}"
    assert (victim.parent / "runs" / "precious.json").read_text() == "someone's file\n"
    new_artifacts = [p for p in moved_in_by_the_fixture if p.parent.name == "runs" and p.name != "precious.json"]
    assert len(new_artifacts) <= 2, f"artifacts placed through the link: {new_artifacts}"  # only the two it moved
    assert not run.run_dir.is_symlink() and run.run_dir.is_dir()
    assert run.leftovers == []


@pytest.mark.long
def test_a_gigabytes_long_line_in_the_series_costs_no_memory(tmp_path: Path):
    rows = [HEALTHY, hostile("sparse_line_agent"), HEALTHY, HEALTHY]
    run = run_harness(tmp_path, rows, workers=1)
    assert_ended_and_published(run, exit_code=4)
    summary = run.artifact("summary")
    assert summary["integrity"]["foreign_series_lines"] >= 1, summary["integrity"]
    assert summary["resources"]["harness_peak_rss_bytes"] < 512 * 1024**2, summary["resources"]
    assert_healthy_rows_succeed(run)


def test_an_error_cannot_forge_console_lines(tmp_path: Path):
    rows = [HEALTHY, hostile("console_forging_agent")]
    run = run_harness(tmp_path, rows, workers=1)
    assert_ended_and_published(run, exit_code=1)
    error = rows_by_index(run)[1]["error"]
    assert "\n" not in error and "\x1b" not in error and "\r" not in error, repr(error)
    assert not any(line.startswith("tracecore-perf: run complete") for line in run.stderr.splitlines()), run.stderr


def test_a_change_undone_before_the_check_still_taints_the_run(tmp_path: Path):
    import agent_bench

    own_agent = tmp_path / "my_toy_agent.py"
    own_agent.write_text((Path(agent_bench.__file__).parent / "agents" / "toy_agent.py").read_text())
    original = own_agent.read_bytes()
    rows = [{"agent": str(own_agent), "task_ref": TASK, "seed": 1}, hostile("restoring_code_agent"), HEALTHY]
    run = run_harness(tmp_path, rows, workers=1, env={"HOSTILE_TARGETS": str(own_agent)})
    assert own_agent.read_bytes() == original, "the fixture did not put the file back: the test proves less"
    assert_ended_and_published(run, exit_code=4)
    assert any(str(own_agent) in problem for problem in run.artifact("summary")["integrity"]["problems"])


def test_a_pth_file_planted_in_the_site_directory_taints_the_run_and_starts_nothing(tmp_path: Path):
    import agent_bench

    # the episodes' interpreter is a scratch one, whose site directory the agent plants into:
    # a .pth in the suite's own would taint every run on the other pytest-xdist workers
    python = interpreter_with_own_copies(tmp_path, agent_bench)
    (site,) = python.parents[1].glob("lib/python*/site-packages")
    planted = site / "tracecore_perf_containment_fixture.pth"
    rows = [HEALTHY, hostile("pth_planting_agent"), HEALTHY, HEALTHY, HEALTHY]
    try:
        run = run_harness(tmp_path, rows, "--python", str(python), workers=1)
        assert planted.exists(), "the fixture planted nothing: the test proves nothing"
    finally:
        planted.unlink(missing_ok=True)
    assert run.finished and "Traceback" not in run.stderr, run.tail()
    assert run.returncode == 4, run.tail()
    problems = run.artifact("summary")["integrity"]["problems"]
    assert any(str(planted) in problem for problem in problems), problems
    assert len(run.artifact("series")) < len(rows), "episodes ran on after the planted .pth"


def test_resume_of_a_run_whose_series_became_a_fifo_neither_hangs_nor_publishes_it_clean(tmp_path: Path):
    victim = tmp_path / "victim.txt"
    rows = [HEALTHY, HEALTHY, hostile("fifo_then_kill_agent"), HEALTHY]
    run = run_harness(tmp_path, rows, workers=1, env={"HOSTILE_VICTIM": str(victim)})
    assert run.returncode == -9 and run.run_dir is not None, run.tail()  # the harness was killed
    resumed = run_watched(
        [sys.executable, "-m", "tracecore_perf", "--resume", str(run.run_dir), "--json", "--no-progress"],
        capture_output=True, text=True, cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp_path / "tmp"), "HOSTILE_VICTIM": str(victim)},
    )  # fmt: skip
    assert "Traceback" not in resumed.stderr, resumed.stderr[-2000:]
    assert resumed.returncode == 4, resumed.stderr[-2000:]
    summary = json.loads(resumed.stdout)["summary"]
    assert summary["status"] == "tainted" and any("series.jsonl" in p for p in summary["integrity"]["problems"])
    again = run_watched(
        [sys.executable, "-m", "tracecore_perf", "--resume", str(run.run_dir)],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 4 and "already published" in again.stderr, again.stderr  # tainted stays tainted


# --- fourth round ----------------------------------------------------------------------------


def test_bytecode_planted_for_the_fork_loop_never_runs(tmp_path: Path):
    """The harness runs from a copy of the package (PYTHONPATH, ahead of the editable install),
    so what the fixture plants in its ``__pycache__`` is seen by this run alone, never by a test
    running beside it from the checkout."""
    import importlib.util
    import shutil

    code = tmp_path / "code"
    shutil.copytree(REPO / "tracecore_perf", code / "tracecore_perf", ignore=shutil.ignore_patterns("__pycache__"))
    pyc = Path(importlib.util.cache_from_source(str(code / "tracecore_perf" / "run" / "episode" / "zygote.py")))
    victim = tmp_path / "victim" / "victim.txt"
    victim.parent.mkdir()
    rows = [HEALTHY, hostile("fork_loop_pyc_planting_agent"), HEALTHY, HEALTHY, HEALTHY]
    run = run_harness(tmp_path, rows, workers=1, env={"HOSTILE_VICTIM": str(victim), "PYTHONPATH": str(code)})
    planted = pyc.exists() and b"pyc-ran" in pyc.read_bytes()  # the fixture's code, not an import's cache
    assert planted, "the fixture planted nothing: the test proves nothing"
    assert not (victim.parent / "pyc-ran").exists(), "the planted bytecode ran"
    # run from a folder on sys.path, the package is sealed whole: the planted file taints the run,
    # and no zygote is started from it in place of the one the fixture killed: the run stops there
    assert_ended_and_published(run, exit_code=4)
    assert any(str(pyc) in problem for problem in run.artifact("summary")["integrity"]["problems"])
    series = run.artifact("series")
    assert len(series) < len(rows) and all(r["success"] for r in series if run.rows[r["episode_index"]] == HEALTHY), series


def test_artifacts_stretched_to_a_terabyte_are_never_read_whole(tmp_path: Path):
    rows = [HEALTHY, HEALTHY, hostile("sparse_artifact_agent"), HEALTHY]
    # hashing 2 TB would take hours: what the run's processes may read is bounded instead
    run = run_harness(tmp_path, rows, workers=1, max_read_bytes=16 * 1024**3)
    assert_ended_and_published(run, exit_code=4)
    assert run.artifact("summary")["integrity"]["altered_artifacts"] == 2


def test_a_logs_folder_replaced_by_a_link_is_never_written_through(tmp_path: Path):
    victim = tmp_path / "victim" / "victim.txt"
    victim.parent.mkdir()
    rows = [HEALTHY, hostile("logs_relinking_agent"), HEALTHY, HEALTHY]
    run = run_harness(tmp_path, rows, workers=1, env={"HOSTILE_VICTIM": str(victim)})
    assert list(victim.parent.iterdir()) == [], f"written through the link: {list(victim.parent.iterdir())}"
    assert_ended_and_published(run, exit_code=4)
    assert run.run_dir is not None and not (run.run_dir / "logs").is_symlink()


def test_an_artifact_indentation_would_blow_up_is_its_rows_failure_not_the_runs(tmp_path: Path):
    rows = [HEALTHY, hostile("indent_bomb_agent"), HEALTHY, HEALTHY]
    run = run_harness(tmp_path, rows, workers=1)
    assert_ended_and_published(run, exit_code=1)  # one failed row; the run's evidence is clean
    assert_clean(run)
    assert_failed_with(rows_by_index(run)[1], ("unverified:",))
    assert "MiB" in rows_by_index(run)[1]["error"], rows_by_index(run)[1]
    assert_healthy_rows_succeed(run)
    assert run.run_dir is not None
    sizes = [path.stat().st_size for path in (run.run_dir / ".agent_bench" / "runs").iterdir()]
    assert len(sizes) == 3 and max(sizes) < 1024 * 1024, sizes  # the three healthy artifacts only


def test_a_timing_that_is_not_a_number_costs_no_other_agent_its_metrics(tmp_path: Path):
    rows = [HEALTHY, hostile("nan_timing_agent"), HEALTHY, HEALTHY]
    run = run_harness(tmp_path, rows, workers=1)
    assert_ended_and_published(run, exit_code=0)
    assert "metrics.failed" not in run.stderr, run.tail()
    by_agent = {row["agent"]: row for row in run.artifact("metrics")}
    assert set(by_agent) == {HEALTHY["agent"], hostile("nan_timing_agent")["agent"]}, by_agent
    assert by_agent[HEALTHY["agent"]]["run_count"] == 3 and by_agent[HEALTHY["agent"]]["avg_wall_clock_s"] > 0
    # not a number is no number: null in the published JSON, which has no NaN
    assert by_agent[hostile("nan_timing_agent")["agent"]]["avg_wall_clock_s"] is None
