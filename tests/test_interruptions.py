"""The harness itself interrupted: kill -9 and resume, Ctrl-C, SIGTERM (and SIGHUP, a closed
terminal, as SIGTERM), a full disk, a vanished output directory. Each runs the real harness
as a process and checks the machine for leftover processes afterwards."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import (
    AGENTS,
    communicate,
    harness,
    harness_env,
    leftover_processes,
    published,
    run_watched,
    scenario_file,
    wait_for,
    wait_until_gone,
)

pytestmark = pytest.mark.slow  # every test here runs the harness: real episodes


def start(work: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tracecore_perf", *args, "--output-dir", str(work / "out"), "--json"],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=harness_env(work),
    )


def wait_for_rows(work: Path, count: int, proc: subprocess.Popen) -> Path:
    """Block until the run has written ``count`` rows (polling the file it appends to), as
    long as the run makes progress (conftest.wait_for)."""

    def written() -> Path | None:
        assert proc.poll() is None, proc.communicate()
        for series in (work / "out").glob("run-*/series.jsonl"):
            if len(series.read_bytes().splitlines()) >= count:
                return series.parent
        return None

    return wait_for(written, proc=proc, watch=[work], what=f"{count} rows")


def wait_until_no_leftovers(root: Path) -> list[str]:
    """Processes dying with their parent take a moment; poll until none is left (or those
    left stop changing: conftest.wait_until_gone)."""
    return wait_until_gone(lambda: leftover_processes(root))


def test_kill_9_loses_only_episodes_in_flight_and_resume_finishes_the_run(tmp_path: Path):
    proc = start(tmp_path, "--episodes", "120", "--workers", "2")
    run_dir = wait_for_rows(tmp_path, 20, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert wait_until_no_leftovers(tmp_path) == []
    rows_before = [json.loads(line) for line in (run_dir / "series.jsonl").read_text().splitlines() if line.strip()]
    assert len(rows_before) >= 20
    # simulate the torn line of a write cut short
    with (run_dir / "series.jsonl").open("a") as fh:
        fh.write('{"episode": 999, "episode_in')

    resumed = harness("--resume", str(run_dir), "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert wait_until_no_leftovers(tmp_path) == []
    series = published(tmp_path / "out", "series")
    assert [row["episode_index"] for row in series] == list(range(120))
    by_index = {row["episode_index"]: row for row in series}
    for row in rows_before:  # rows written before the kill are kept as they were
        assert by_index[row["episode_index"]] == row
    manifest = published(tmp_path / "out", "manifest")
    assert manifest["status"] == "resumed"
    attempts = manifest["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert attempts[0]["status"] == "interrupted"
    assert attempts[0]["episodes_run"] + attempts[1]["episodes_run"] == 120
    assert attempts[1]["episodes_run"] == 120 - len(rows_before)
    assert {row["attempt"] for row in series} == {1, 2}
    metrics = published(tmp_path / "out", "metrics")
    assert sum(row["run_count"] for row in metrics) == 120  # each episode's artifact once
    summary = json.loads(resumed.stdout)["summary"]
    assert summary["episodes"] == 120 and summary["status"] == "resumed"


def test_resuming_a_complete_run_says_so_and_changes_nothing(tmp_path: Path):
    done = harness("--episodes", "4", "--workers", "2", "--output-dir", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (run_dir,) = (tmp_path / "out").glob("run-*")
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (tmp_path / "out").rglob("*") if p.is_file()}
    again = harness("--resume", str(run_dir), cwd=tmp_path)
    assert again.returncode == 0
    assert "already published" in again.stderr
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert after == before


def test_resume_refuses_flags_and_non_run_directories(tmp_path: Path):
    done = harness("--resume", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2 and "not a run directory" in done.stderr
    done = harness("--resume", str(tmp_path), "--episodes", "3", cwd=tmp_path)
    assert done.returncode == 2 and "drop --episodes" in done.stderr


HANG_MIX = [
    {"agent": "agents/toy_agent.py", "task_ref": "filesystem_hidden_config@1", "seed": 1},
    {"agent": str(AGENTS / "sigterm_ignoring_agent.py"), "task_ref": "filesystem_hidden_config@1", "seed": 1},
]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 143)])
def test_a_signal_stops_the_run_kills_episodes_in_flight_and_publishes(tmp_path: Path, sig, code):
    scenario = scenario_file(tmp_path / "mix.json", HANG_MIX)
    proc = start(tmp_path, "--scenario", str(scenario), "--episodes", "40", "--workers", "3", "--timeout", "600")
    wait_for_rows(tmp_path, 2, proc)
    assert leftover_processes(tmp_path), "the hanging episodes should be running now"
    proc.send_signal(sig)
    out, err = communicate(proc, watch=[tmp_path])
    assert proc.returncode == code, err
    assert leftover_processes(tmp_path) == []
    # the last line names the exact command that finishes the run
    (run_dir,) = (tmp_path / "out").glob("run-*")
    last = err.strip().splitlines()[-1]
    assert last.startswith("tracecore-perf: interrupted; to finish the run: ") and f"--resume {run_dir}" in last, err
    payload = json.loads(out)
    assert payload["ok"] is False
    summary = published(tmp_path / "out", "summary")
    assert summary["status"] == "interrupted" and 2 <= summary["episodes"] < 40
    manifest = published(tmp_path / "out", "manifest")
    assert manifest["status"] == "interrupted" and manifest["attempts"][0]["status"] == "interrupted"
    # episodes killed by the interruption get no row: a resume runs them again
    series = published(tmp_path / "out", "series")
    assert all(not row["timed_out"] for row in series)


@pytest.mark.parametrize(
    ("sig", "code", "word"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated"), (signal.SIGHUP, 143, "terminated")],
)
def test_a_signal_during_validation_stops_cleanly_before_anything_is_written(tmp_path: Path, sig, code, word):
    agent = tmp_path / "import_gate_agent.py"
    agent.write_bytes((AGENTS / "import_gate_agent.py").read_bytes())
    row = {"agent": str(agent), "task_ref": "filesystem_hidden_config@1", "seed": 1}
    scenario = scenario_file(tmp_path / "gated.json", [row])
    proc = start(tmp_path, "--scenario", str(scenario), "--episodes", "4", "--workers", "1")
    try:  # the probe is loading the agent file
        wait_for(lambda: list(tmp_path.glob("import-started-*")), proc=proc, watch=[tmp_path], what="the agent's import")
        proc.send_signal(sig)
    finally:
        (tmp_path / "gate-open").touch()  # let the probe finish, so the zygote answers at once
    out, err = communicate(proc, watch=[tmp_path])
    assert proc.returncode == code, err
    assert err.strip().splitlines()[-1] == f"tracecore-perf: {word}", err
    assert out == ""
    assert wait_until_no_leftovers(tmp_path) == []
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # nothing published, no run dir
    assert not list((tmp_path / ".tmp").glob("tracecore-perf-*"))  # no scratch directory left


def test_a_second_ctrl_c_exits_at_once(tmp_path: Path):
    scenario = scenario_file(tmp_path / "mix.json", HANG_MIX)
    proc = start(tmp_path, "--scenario", str(scenario), "--episodes", "40", "--workers", "3", "--timeout", "600")
    wait_for_rows(tmp_path, 2, proc)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    _, err = communicate(proc, watch=[tmp_path])
    assert proc.returncode == 130
    assert wait_until_no_leftovers(tmp_path) == []
    # at once, and still with the command that finishes the run; no scratch directory left (two
    # signals sent back to back may arrive as one: then the first's orderly stop says it)
    (run_dir,) = (tmp_path / "out").glob("run-*")
    last = err.strip().splitlines()[-1]
    assert re.match(r"tracecore-perf: interrupted( again)?; to finish the run: ", last) and f"--resume {run_dir}" in last, err
    assert not list((tmp_path / ".tmp").glob("tracecore-perf-*"))
    # "running" after a second Ctrl-C: --resume takes it from there
    assert json.loads((run_dir / "manifest.json").read_text())["status"] in ("running", "interrupted")


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True).returncode == 0


def test_a_full_disk_stops_the_run_with_a_clear_error_keeping_rows(tmp_path: Path):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "400k"):
        pytest.skip("needs root to mount a small tmpfs as a disk that fills up")
    try:
        proc = run_watched(
            [sys.executable, "-m", "tracecore_perf", "--episodes", "400", "--workers", "2", "--output-dir", str(disk / "out")],
            cwd=tmp_path, capture_output=True, text=True, env=harness_env(tmp_path),
        )  # fmt: skip
        assert proc.returncode == 3, proc.stderr
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("tracecore-perf: run stopped: ") and "No space left on device" in last
        assert "Traceback" not in proc.stderr and "Logging error" not in proc.stderr
        (run_dir,) = (disk / "out").glob("run-*")
        lines = (run_dir / "series.jsonl").read_bytes().splitlines()
        complete = [json.loads(line) for line in lines[:-1]]
        assert len(complete) > 0 and all(row["episode"] == row["episode_index"] + 1 for row in complete)
        # episodes may fail to persist their artifacts, but the workers themselves carry on
        assert not [row for row in complete if (row["error"] or "").startswith("worker failed")]
        assert wait_until_no_leftovers(tmp_path) == []
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_vanished_output_directory_stops_the_run(tmp_path: Path):
    proc = start(tmp_path, "--episodes", "2000", "--workers", "2")
    run_dir = wait_for_rows(tmp_path, 5, proc)
    run_dir.rename(tmp_path / "moved-away")  # gone from where the run writes, in one step
    out, err = communicate(proc, watch=[tmp_path])
    assert proc.returncode == 3, err
    (stopped,) = [line for line in err.splitlines() if line.startswith("tracecore-perf: run stopped:")]
    assert "the run directory disappeared" in stopped and "--resume" in stopped
    assert wait_until_no_leftovers(tmp_path) == []
    assert os.path.isdir(tmp_path / "out")


def test_a_signal_while_publishing_leaves_the_run_resumable_and_resume_publishes_it(tmp_path: Path, monkeypatch):
    """SIGTERM arriving as the harness publishes (a CI timeout at the end of a long run): the
    rows stay, the manifest says the run was interrupted, and --resume publishes it."""
    from tracecore_perf.errors import ExitCode, stop_on_sigterm
    from tracecore_perf.run import harness as run_harness
    from tracecore_perf.run.scenario import DEFAULT_SCENARIO
    from tracecore_perf.settings import RunSettings

    real_publish = run_harness.publish

    def publish_under_sigterm(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # the real signal, to the real handler, mid-publication
        return real_publish(*args, **kwargs)

    monkeypatch.setattr(run_harness, "publish", publish_under_sigterm)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    previous = signal.getsignal(signal.SIGTERM)
    stop_on_sigterm()
    try:
        options = run_harness.RunOptions(
            settings=RunSettings(episodes=4, workers=2), output_dir=str(tmp_path / "out"), scenario=list(DEFAULT_SCENARIO)
        )
        outcome = run_harness.start(options, show_progress=False)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert outcome.exit_code == ExitCode.TERMINATED and outcome.publication is None
    run_dir = Path(outcome.run_dir)
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "interrupted"
    assert len((run_dir / "series.jsonl").read_text().splitlines()) == 4
    assert not list((tmp_path / "out").glob("perf-manifest-*.json"))
    resumed = harness("--resume", str(run_dir), "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = published(tmp_path / "out", "summary")
    assert summary["status"] == "resumed" and summary["episodes"] == 4 and summary["success_count"] == 4


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="--instructions needs valgrind")
def test_sigterm_in_a_rows_first_counted_episode_is_an_interrupt(tmp_path: Path):
    """--instructions, one worker: the toy row's episode, then the hanging row's first, counted
    one (its profile kept for explain) is in flight when SIGTERM arrives: an interrupt with the
    resume line, never an internal error (its outcome was unbound when the cancellation reached
    the episode's cleanup: exit 70)."""
    rows = [
        {"agent": "agents/toy_agent.py", "task_ref": "filesystem_hidden_config@1", "seed": 1},
        {"agent": str(AGENTS / "hanging_agent.py"), "task_ref": "filesystem_hidden_config@1", "seed": 1},
    ]
    scenario = scenario_file(tmp_path / "s.json", rows)
    proc = start(tmp_path, "--scenario", str(scenario), "--episodes", "4", "--workers", "1", "--instructions", "--timeout", "600")
    wait_for_rows(tmp_path, 1, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = communicate(proc, watch=[tmp_path])
    assert proc.returncode == 143, err
    assert "internal error" not in err, err
    assert err.strip().splitlines()[-1].startswith("tracecore-perf: interrupted; to finish the run: "), err
