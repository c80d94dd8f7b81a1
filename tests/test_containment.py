"""Containment: one episode can only ever cost its own row.

Hostile fixture agents attack the harness from inside an episode: they kill or stop their
worker or the zygote, forge their result on every descriptor they hold, report results of
the wrong shape or size, tamper with the run's own files, and plant code for later episodes
to load. Whatever they do, the run ends and publishes; each hostile episode gets exactly one
failed row; every healthy episode beside it succeeds at normal latency; tampering with the
evidence is detected and published as such ("tainted", exit 4), never as rows; bad input is
refused before any episode starts; and no process of the run is left on the machine.

Every assertion is on what the user sees: the files in the output directory, the exit code
and stderr. Episodes get TMPDIR inside the test's tmp_path (their scratch working
directories go there), so whatever they leave running is found by its working directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from conftest import AGENTS, Stalled, communicate, scenario_file, wait_until_gone

pytestmark = pytest.mark.slow  # every test here runs the harness: real episodes

TIMEOUT = 6  # per episode; healthy episodes take ~0.1 s
TASK = "filesystem_hidden_config@1"
HEALTHY = {"agent": "agents/toy_agent.py", "task_ref": TASK, "seed": 1}
MARKER = "tracecore-perf-containment-fixture"  # the fixtures carry it in what they write and spawn
KINDS = ("manifest", "summary", "metrics", "series", "samples")
CLEAN = {
    "clean": True,
    "problems": [],
    "foreign_series_lines": 0,
    "missing_series_rows": 0,
    "foreign_artifacts": 0,
    "missing_artifacts": 0,
}
MAX_PROCESSES = 64  # a run of this file never needs more; beyond it the harness is forking away


def hostile(name: str) -> dict:
    return {"agent": str(AGENTS / f"{name}.py"), "task_ref": TASK, "seed": 1}


# --- running the harness and looking at what it left ------------------------------------


def leftover_processes(root: Path, marker: str) -> list[psutil.Process]:
    """Live processes (stopped ones included) working under ``root``, or naming ``root`` or
    the run's marker on their command line."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if proc.pid == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmdline = " ".join(proc.info["cmdline"] or [])
            try:
                cwd = proc.cwd()
            except psutil.Error:
                cwd = ""
            if marker in cmdline or str(root) in cmdline or cwd == str(root) or cwd.startswith(str(root) + os.sep):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def describe(proc: psutil.Process) -> str:
    try:
        return f"{proc.pid} [{proc.status()}] {' '.join(proc.cmdline())[:120]} (cwd {proc.cwd()})"
    except psutil.Error:
        return f"{proc.pid} (gone)"


def await_no_leftovers(root: Path, marker: str) -> list[str]:
    """Give processes dying with their parents a moment (until none is left, or the set of
    those left stops changing for conftest.QUIET_S), then report what is still there and kill
    it, so later runs start on a clean machine."""
    left = wait_until_gone(lambda: leftover_processes(root, marker))
    report = [describe(proc) for proc in left]
    for proc in left:  # processes this test caused, killed by pid
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(left, timeout=5)
    return report


@dataclass
class Run:
    work: Path
    rows: list[dict]
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    finished: bool = False
    stalled: str = ""  # the watchdog's word if the run stopped making progress and was killed
    runaway: int = 0  # processes the harness had when the watchdog stopped it
    overread: int = 0  # bytes its tree had read when the read guard stopped it
    leftovers: list[str] = field(default_factory=list)

    @property
    def out(self) -> Path:
        return self.work / "out"

    @property
    def run_dir(self) -> Path | None:
        found = sorted(self.out.glob("run-*")) if self.out.is_dir() else []
        return found[0] if found else None

    def artifact(self, kind: str):
        found = sorted(self.out.glob(f"perf-{kind}-*.json")) if self.out.is_dir() else []
        return json.loads(found[0].read_text()) if len(found) == 1 else None

    def tail(self) -> str:
        return f"exit {self.returncode}; {self.stalled or 'stderr tail:'}\n{self.stderr[-3000:]}"

    def agent_of(self, index: int) -> str:
        return self.rows[index % len(self.rows)]["agent"]


def run_harness(
    work: Path, rows: list[dict], *args: str, episodes: int | None = None, workers: int = 2,
    nofile: int | None = None, env: dict[str, str] | None = None, max_read_bytes: int | None = None,
) -> Run:  # fmt: skip
    """``python -m tracecore_perf`` over ``rows`` as a user runs it, with TMPDIR inside
    ``work``; stopped only if it stops making progress (conftest's watchdog: no output, no
    file change under ``work``, no CPU time for QUIET_S; then ``finished`` is false and
    ``stalled`` says so), never at a fixed time. A second watchdog stops it if it starts more
    than MAX_PROCESSES processes, or once its live processes have read more than
    ``max_read_bytes`` (a bound on work, where a test's point is work never done: a regression
    fails in seconds rather than taking hours)."""
    (work / "tmp").mkdir(parents=True, exist_ok=True)
    marker = f"{MARKER}-{uuid.uuid4().hex[:12]}"
    run = Run(work=work, rows=rows)
    scenario = scenario_file(work / "scenario.json", rows)
    command = [
        sys.executable, "-m", "tracecore_perf", "--scenario", str(scenario), "--episodes", str(episodes or len(rows)),
        "--workers", str(workers), "--timeout", str(TIMEOUT), "--output-dir", str(run.out), "--json", "--no-progress",
        "--log-format", "json", *args,
    ]  # fmt: skip
    env = {
        **os.environ,
        "TMPDIR": str(work / "tmp"),
        "HOSTILE_RUN_GLOB": str(run.out / "run-*"),
        "HOSTILE_MARKER": marker,
        "HOSTILE_SPARE_PID": str(os.getpid()),  # the test runner: no fixture may kill it
        **(env or {}),
    }

    def limits() -> None:
        if nofile is not None:
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))

    proc = subprocess.Popen(
        command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=limits
    )
    stop = threading.Event()

    def read_bytes(tree: list[psutil.Process]) -> int:
        total = 0
        for member in tree:
            with contextlib.suppress(psutil.Error, AttributeError):
                total += member.io_counters().read_chars
        return total

    def watchdog() -> None:  # a guard against a fork storm (and overreading), not a synchronisation
        while not stop.wait(0.05):
            try:
                tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
            except psutil.Error:
                return
            if len(tree) - 1 > MAX_PROCESSES:
                run.runaway = len(tree) - 1
            elif max_read_bytes is not None and (read := read_bytes(tree)) > max_read_bytes:
                run.overread = read
            else:
                continue
            for member in [*tree[1:], tree[0]]:
                with contextlib.suppress(psutil.Error):
                    member.kill()
            return

    guard = threading.Thread(target=watchdog, daemon=True)
    guard.start()
    try:
        run.stdout, run.stderr = communicate(proc, watch=[work])
        run.finished = run.runaway == 0 and run.overread == 0
    except Stalled as stalled:
        run.stalled = str(stalled).splitlines()[0]
    finally:
        stop.set()
        guard.join()
    run.returncode = proc.returncode
    run.leftovers = await_no_leftovers(work, marker)
    return run


# --- what every run promises -----------------------------------------------------------


def assert_ended_and_published(run: Run, exit_code: int) -> None:
    assert run.runaway == 0, f"the harness started {run.runaway} processes and was stopped"
    assert run.overread == 0, f"the harness's processes read {run.overread} bytes and were stopped"
    assert run.finished, f"the run did not end; {run.tail()}"
    assert "Traceback" not in run.stderr and "Traceback" not in run.stdout, run.tail()
    missing = [kind for kind in KINDS if run.artifact(kind) is None]
    assert not missing, f"not published: {missing}; {run.tail()}"
    assert run.returncode == exit_code, run.tail()


def rows_by_index(run: Run) -> dict[int, dict]:
    """The published series, one row per episode index 0..N-1, each for the planned agent."""
    series = run.artifact("series")
    assert series is not None, f"no published series; {run.tail()}"
    indices = sorted(row["episode_index"] for row in series)
    assert indices == list(range(len(run.rows))), f"rows per episode index: {indices}"
    by_index = {row["episode_index"]: row for row in series}
    for index, row in by_index.items():
        assert row["agent"] == run.agent_of(index), row
    return by_index


def assert_healthy_rows_succeed(run: Run) -> None:
    by_index = rows_by_index(run)
    healthy = [by_index[i] for i, row in enumerate(run.rows) if row == HEALTHY]
    bad = [(r["episode_index"], r["error"], r["wall_clock_s"]) for r in healthy if not r["success"]]
    assert not bad, f"healthy episodes that failed: {bad}"


def assert_failed_with(row: dict, prefixes: tuple[str, ...]) -> None:
    assert row["success"] is False, f"a hostile episode was published as a success: {row}"
    assert (row["error"] or "").startswith(prefixes), f"error {row['error']!r} is none of {prefixes}"


def assert_clean(run: Run) -> None:
    summary, manifest = run.artifact("summary"), run.artifact("manifest")
    assert summary is not None and manifest is not None, run.tail()
    integrity = summary.get("integrity")
    assert isinstance(integrity, dict) and set(CLEAN) <= set(integrity), integrity
    # the contract's fields as for a clean run; any further counter the harness keeps is 0 too
    assert {k: integrity[k] for k in CLEAN} == CLEAN, integrity
    assert all(v == 0 for k, v in integrity.items() if k not in CLEAN and isinstance(v, int)), integrity
    assert summary["status"] == manifest["status"] == "complete"


# --- one run: healthy episodes between attacks on the process tree and the result ------------

RAISED = "RuntimeError:"
PROCESS_FIXTURES: dict[str, tuple[str, ...]] = {
    # the long ones first, so their timeouts overlap the rest
    "worker_stopping_agent": ("timeout:", "worker failed:"),
    "worker_stopping_exiting_agent": ("timeout:", "worker failed:"),
    "worker_killing_agent": ("worker failed:", "crashed:"),
    "worker_sigterm_agent": ("worker failed:", "crashed:"),
    "fd_garbage_agent": (RAISED, "crashed:", "bad result:"),
    "stopped_grandchild_agent": (RAISED, "crashed:"),
    # the forgers' results claim success: only a verified one may count, and none can be
    "forged_result_raising_agent": ("unverified:", "bad result:", "crashed:", RAISED),
    "forged_result_exiting_agent": ("unverified:", "bad result:", "crashed:"),
    "result_list_agent": ("bad result:", "crashed:"),
    "result_completed_yes_agent": ("bad result:", "crashed:"),
    "result_episode_s_string_agent": ("bad result:", "crashed:"),
    "result_huge_agent": ("bad result:", "unverified:", "crashed:"),
}


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory) -> Run:
    rows = []
    for name in PROCESS_FIXTURES:  # each attack between two healthy episodes
        rows += [HEALTHY, hostile(name)]
    rows.append(HEALTHY)
    return run_harness(tmp_path_factory.mktemp("mixed"), rows, workers=4)


@pytest.mark.slow
def test_attacks_on_the_process_tree_end_in_a_published_run_that_exits_1(mixed_run: Run):
    assert_ended_and_published(mixed_run, exit_code=1)


@pytest.mark.slow
def test_attacks_on_the_process_tree_cost_no_healthy_row(mixed_run: Run):
    assert_healthy_rows_succeed(mixed_run)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PROCESS_FIXTURES))
def test_each_attacker_gets_one_failed_row(mixed_run: Run, name: str):
    by_index = rows_by_index(mixed_run)
    (index,) = [i for i, row in enumerate(mixed_run.rows) if row == hostile(name)]
    assert_failed_with(by_index[index], PROCESS_FIXTURES[name])


@pytest.mark.slow
def test_attacks_on_the_process_tree_leave_the_evidence_clean(mixed_run: Run):
    assert_clean(mixed_run)


@pytest.mark.slow
def test_attacks_on_the_process_tree_leave_no_process_behind(mixed_run: Run):
    assert mixed_run.leftovers == []


# --- the zygote killed or stopped -----------------------------------------------------------

ZYGOTE_RUNS: dict[str, tuple[list[dict], tuple[str, ...]]] = {
    # healthy episodes run beside the attack on the other worker, and after it
    "zygote_killing_agent": (
        [HEALTHY, hostile("zygote_killing_agent"), HEALTHY, HEALTHY, HEALTHY, HEALTHY],
        ("worker failed:", "crashed:", RAISED),
    ),
    # then a worker dies while the zygote is stopped: replacing it must not hang the run
    "zygote_stopping_agent": (
        [HEALTHY, hostile("zygote_stopping_agent"), HEALTHY, HEALTHY, HEALTHY, hostile("worker_killing_agent"), HEALTHY, HEALTHY],
        (RAISED, "worker failed:", "crashed:"),
    ),
}


@pytest.fixture(scope="module", params=list(ZYGOTE_RUNS))
def zygote_run(request, tmp_path_factory) -> tuple[str, Run]:
    rows, _ = ZYGOTE_RUNS[request.param]
    return request.param, run_harness(tmp_path_factory.mktemp(request.param), rows, workers=2)


@pytest.mark.slow
def test_a_run_survives_its_zygote(zygote_run: tuple[str, Run]):
    name, run = zygote_run
    assert_ended_and_published(run, exit_code=1)
    assert_clean(run)


@pytest.mark.slow
def test_the_zygote_attacker_costs_only_its_own_row(zygote_run: tuple[str, Run]):
    name, run = zygote_run
    assert_healthy_rows_succeed(run)
    by_index = rows_by_index(run)
    assert_failed_with(by_index[1], ZYGOTE_RUNS[name][1])
    for index, row in enumerate(run.rows):
        if row == hostile("worker_killing_agent"):
            assert_failed_with(by_index[index], PROCESS_FIXTURES["worker_killing_agent"])


@pytest.mark.slow
def test_a_stopped_or_killed_zygote_does_not_outlive_the_run(zygote_run: tuple[str, Run]):
    assert zygote_run[1].leftovers == []


# --- tampering with the run's own files ------------------------------------------------------

# fixture -> the integrity counter its tampering must raise (None: the harness may restore
# the rows it wrote, so only a problem naming the file is required), and whether it leaves
# lines the harness did not write in series.jsonl (those are set aside under tainted/)
TAMPERERS: dict[str, tuple[str | None, bool]] = {
    "series_appending_agent": ("foreign_series_lines", True),
    "series_rewriting_agent": ("foreign_series_lines", True),
    "series_deleting_agent": (None, False),
    "agent_bench_deleting_agent": ("missing_artifacts", False),
    "artifact_dropping_agent": ("foreign_artifacts", False),
    # plants a file where the check sets things aside, then flips failed rows to successes
    "aside_blocking_agent": ("foreign_series_lines", True),
}
RAISING = hostile("raising_agent")


@pytest.fixture(scope="module", params=list(TAMPERERS))
def tampered_run(request, tmp_path_factory) -> tuple[str, Run]:
    # one worker: rows (and artifacts) of the first three episodes exist when the tamperer
    # acts; the raising episode's failure is already in the series
    rows = [HEALTHY, RAISING, HEALTHY, hostile(request.param), HEALTHY, HEALTHY]
    return request.param, run_harness(tmp_path_factory.mktemp(request.param), rows, workers=1)


@pytest.mark.slow
def test_a_tampered_run_is_published_tainted_and_exits_4(tampered_run: tuple[str, Run]):
    name, run = tampered_run
    assert_ended_and_published(run, exit_code=4)
    assert run.artifact("manifest")["status"] == "tainted"
    assert run.artifact("summary")["status"] == "tainted"


@pytest.mark.slow
def test_the_integrity_block_says_what_was_tampered_with(tampered_run: tuple[str, Run]):
    name, run = tampered_run
    summary = run.artifact("summary")
    assert summary is not None, run.tail()
    integrity = summary.get("integrity")
    assert isinstance(integrity, dict) and set(CLEAN) <= set(integrity), integrity
    assert integrity["clean"] is False
    problems = integrity["problems"]
    assert problems and all(isinstance(p, str) and p and "\n" not in p for p in problems), problems
    assert all(isinstance(integrity[k], int) and integrity[k] >= 0 for k in CLEAN if k not in ("clean", "problems"))
    counter, _ = TAMPERERS[name]
    if counter is None:
        assert any("series.jsonl" in problem for problem in problems), problems
    else:
        assert integrity[counter] >= 1, integrity


@pytest.mark.slow
def test_the_published_series_holds_only_true_rows(tampered_run: tuple[str, Run]):
    """One row per episode, as the harness saw it: the raising episodes (the tamperer
    among them) failed whatever the series file claims; the healthy ones succeeded."""
    name, run = tampered_run
    by_index = rows_by_index(run)
    assert_failed_with(by_index[1], (RAISED,))
    assert_failed_with(by_index[3], (RAISED,))
    assert_healthy_rows_succeed(run)
    assert all(row.get("run_id") != "forged" and "_forged" not in row for row in by_index.values())


@pytest.mark.slow
def test_lines_the_harness_did_not_write_are_set_aside(tampered_run: tuple[str, Run]):
    name, run = tampered_run
    assert run.run_dir is not None, run.tail()
    series_files = list(run.out.glob("perf-series-*.json"))
    assert series_files and all(MARKER not in path.read_text() for path in series_files)
    if TAMPERERS[name][1]:
        tainted = Path(run.artifact("summary")["integrity"]["set_aside"])
        assert tainted.is_dir(), f"no {tainted}"
        kept = "".join(p.read_text(errors="replace") for p in tainted.rglob("*") if p.is_file())
        assert MARKER in kept, f"the forged lines are not in {tainted}"


@pytest.mark.slow
def test_a_tampering_episode_leaves_no_process_behind(tampered_run: tuple[str, Run]):
    assert tampered_run[1].leftovers == []


# --- what one episode can do to its neighbours, and what it leaves behind ------------------

WRONG = hostile("wrong_answer_agent")  # a finished but failed run: no neighbour may make it pass
NEIGHBOUR_FIXTURES: dict[str, tuple[str, ...]] = {
    "neighbour_sabotaging_agent": (RAISED,),
    "group_stopping_agent": ("crashed:", "bad result:"),
    "deep_json_agent": ("bad result:",),
    "deep_tree_agent": (RAISED,),
    "orphan_leaving_agent": ("worker failed:", "crashed:", RAISED),
}


@pytest.fixture(scope="module")
def neighbour_run(tmp_path_factory) -> Run:
    rows = [HEALTHY, WRONG]
    for name in NEIGHBOUR_FIXTURES:  # the saboteur first: its neighbours run while it watches
        rows += [hostile(name), HEALTHY, WRONG, HEALTHY]
    return run_harness(tmp_path_factory.mktemp("neighbours"), rows, workers=2)


@pytest.mark.slow
def test_attacks_on_neighbours_cost_no_other_row(neighbour_run: Run):
    run = neighbour_run
    assert_ended_and_published(run, exit_code=1)
    assert_clean(run)
    assert_healthy_rows_succeed(run)
    by_index = rows_by_index(run)
    wrong = [by_index[i] for i, row in enumerate(run.rows) if row == WRONG]
    assert wrong and all(not row["success"] and row["run_id"] and row["returncode"] == 0 for row in wrong), wrong
    for name, prefixes in NEIGHBOUR_FIXTURES.items():
        (index,) = [i for i, row in enumerate(run.rows) if row == hostile(name)]
        assert_failed_with(by_index[index], prefixes)


@pytest.mark.slow
def test_what_an_episode_leaves_behind_its_dead_zygote_is_gone(neighbour_run: Run):
    assert neighbour_run.leftovers == []
    assert not list((neighbour_run.work / "tmp").glob("tracecore-perf-*")), "scratch directories left behind"


@pytest.fixture(scope="module")
def late_tamper_run(tmp_path_factory) -> Run:
    rows = [HEALTHY, RAISING, HEALTHY, hostile("late_tampering_agent"), HEALTHY, HEALTHY]
    return run_harness(tmp_path_factory.mktemp("late"), rows, workers=1)


@pytest.mark.slow
def test_a_process_waiting_to_tamper_after_the_check_is_dead_before_it(late_tamper_run: Run):
    run = late_tamper_run
    assert_ended_and_published(run, exit_code=1)
    assert_clean(run)
    by_index = rows_by_index(run)
    assert_failed_with(by_index[1], (RAISED,))
    assert_failed_with(by_index[3], ("worker failed:", "crashed:", RAISED))
    assert_healthy_rows_succeed(run)
    assert run.leftovers == []


# --- code planted for later episodes --------------------------------------------------------


@pytest.fixture(scope="module")
def planting_run(tmp_path_factory) -> Run:
    rows = [hostile("toy_planting_agent")] + [HEALTHY] * 7
    return run_harness(tmp_path_factory.mktemp("planting"), rows, workers=2)


@pytest.mark.slow
def test_planted_code_is_not_loaded_by_later_episodes(planting_run: Run):
    run = planting_run
    assert_ended_and_published(run, exit_code=1)
    planted = [p for p in run.work.rglob("agents/toy_agent.py") if MARKER in p.read_text()]
    assert planted, "the planting fixture planted nothing: the test proves nothing"
    assert_failed_with(rows_by_index(run)[0], (RAISED,))
    assert_healthy_rows_succeed(run)
    assert run.leftovers == []


# --- bad input: refused up front -----------------------------------------------------------


def _bad_agent_file(work: Path, case: str) -> str:
    if case == "not python":
        return "/etc/passwd"
    path = work / ("broken_agent.py" if case == "syntax error" else "classless_agent.py")
    path.write_text("def act(self:\n    return\n" if case == "syntax error" else '"""No agent class here."""\n\nVALUE = 1\n')
    return str(path)


def assert_refused(run: Run) -> str:
    assert run.runaway == 0, f"the harness started {run.runaway} processes and was stopped"
    assert run.finished, f"no answer; {run.tail()}"
    assert run.returncode == 2, run.tail()
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tracecore-perf: error: "), run.stderr[-3000:]
    assert not run.out.exists(), sorted(str(p) for p in run.out.rglob("*"))
    assert run.leftovers == []
    return lines[0]


@pytest.mark.parametrize("case", ["not python", "syntax error", "no agent class"])
def test_an_agent_tracecore_cannot_load_is_refused(tmp_path: Path, case: str):
    agent = _bad_agent_file(tmp_path, case)
    run = run_harness(tmp_path, [HEALTHY, {"agent": agent, "task_ref": TASK, "seed": 1}], workers=1)
    line = assert_refused(run)
    assert agent in line or Path(agent).name in line, line


def test_more_workers_than_the_host_can_hold_are_refused(tmp_path: Path):
    # a low descriptor limit keeps the current code from forking 100000 workers: it
    # runs out of sockets first (and the watchdog stops it anyway)
    run = run_harness(tmp_path, [HEALTHY], episodes=1, workers=100000, nofile=1024)
    line = assert_refused(run)
    assert "--workers" in line, line
    assert any(int(n) < 100000 for n in re.findall(r"\d+", line)), f"the line names no bound: {line}"


@pytest.mark.slow
def test_check_fails_a_tainted_run(tampered_run: tuple[str, Run]):
    from tracecore_perf.published import locate
    from tracecore_perf.verdicts.check import evaluate

    name, run = tampered_run
    verdict = evaluate(locate(run.out))  # the output folder holds this one run
    (integrity,) = [t for t in verdict.thresholds if t.name == "integrity.clean"]
    assert integrity.ok is False and not verdict.ok
