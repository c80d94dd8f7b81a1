"""Faults of the host are never an episode's failure: a disk that fills, a write
permission lost, the output folder removed or renamed mid-run. The attempt stops (exit 3) with
the exact ``--resume`` command, the episodes the host kept from being recorded get no row, and
the resumed run has every episode, no failure the agents never made, and is published clean.
Each fault is real (a small tmpfs, a read-only bind mount in a private mount namespace, an agent
that moves the folder away at its Nth episode); no sleep decides when it happens."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import AGENTS, communicate, harness, harness_env, leftover_processes, run_watched, scenario_file, wait_for

pytestmark = pytest.mark.slow  # every test here runs the harness: real episodes

PY = sys.executable
FAULT_AGENT = str(AGENTS / "host_fault_agent.py")
TASK = "filesystem_hidden_config@1"


def _namespaces_usable() -> str | None:
    """Why a private mount namespace with a tmpfs cannot be had here (None: it can)."""
    if shutil.which("unshare") is None:
        return "needs unshare(1) (util-linux)"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True, text=True,
    )  # fmt: skip
    if probe.returncode != 0:
        return f"needs root (or CAP_SYS_ADMIN) to mount in a private mount namespace: {probe.stderr.strip()[:200]}"
    return None


def in_namespace(work: Path, script: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``script`` (sh) in a private mount namespace: what it mounts is gone when it ends."""
    return run_watched(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        cwd=work, capture_output=True, text=True, env=harness_env(work, env),
    )  # fmt: skip


def resume_dir(stderr: str) -> Path:
    """The run directory the stop line's ``--resume`` command names (the line is the last)."""
    last = stderr.strip().splitlines()[-1]
    found = re.findall(r"--resume (\S+)", last)
    assert found, stderr[-3000:]
    return Path(found[-1].removesuffix(")"))  # the stop line ends "(...; to finish it: COMMAND)"


def no_temp_files(folder: Path) -> list[Path]:
    """What the harness's atomic writes might leave: ``.<name>.<random>`` temporary files."""
    return [p for p in folder.rglob(".*") if p.is_file() and re.match(r"\.(series|samples)\.jsonl\.|\..*\.tmp$", p.name)]


def assert_resumed_clean(out: Path, episodes: int) -> None:
    (summary_path,) = out.glob("perf-summary-*.json")
    summary = json.loads(summary_path.read_text())
    assert summary["status"] == "resumed", summary
    assert summary["integrity"]["clean"], summary["integrity"]
    assert summary["episodes"] == episodes and summary["failure_count"] == 0, summary["failure_reasons"]
    (series_path,) = out.glob("perf-series-*.json")
    series = json.loads(series_path.read_text())
    assert sorted(row["episode_index"] for row in series) == list(range(episodes))
    assert all(row["success"] for row in series)
    (manifest_path,) = out.glob("perf-manifest-*.json")
    attempts = json.loads(manifest_path.read_text())["attempts"]
    assert [a["status"] for a in attempts] == ["interrupted", "resumed"]


def test_a_disk_that_fills_mid_run_costs_no_episode_and_resume_finishes_the_run(tmp_path: Path):
    if reason := _namespaces_usable():
        pytest.skip(reason)
    disk = tmp_path / "disk"
    disk.mkdir()
    episodes = 48
    script = f"""
        mount -t tmpfs -o size=320k tmpfs {disk} || exit 99
        {PY} -m tracecore_perf --episodes {episodes} --workers 2 --output-dir {disk}/out --no-progress \
            >first.out 2>first.err
        echo $? >first.rc
        cp -a {disk}/out first-copy
        mount -o remount,size=16m {disk}
        {PY} -m tracecore_perf --resume "$(ls -d {disk}/out/run-*)" --json >second.out 2>second.err
        echo $? >second.rc
        cp -a {disk}/out after
    """
    done = in_namespace(tmp_path, script)
    assert done.returncode == 0, done.stderr
    first_err = (tmp_path / "first.err").read_text()
    assert (tmp_path / "first.rc").read_text().strip() == "3", first_err[-3000:]
    last = first_err.strip().splitlines()[-1]
    assert last.startswith("tracecore-perf: run stopped: ") and "No space left on device" in last, first_err[-3000:]
    run_dir = resume_dir(first_err)
    assert run_dir.parent == disk / "out"
    first = tmp_path / "first-copy" / run_dir.name
    rows = [json.loads(line) for line in (first / "series.jsonl").read_bytes().splitlines() if line.endswith(b"}")]
    assert 0 < len(rows) < episodes
    # no failure the agents never made: every row written is a success
    assert all(row["success"] for row in rows), [row["error"] for row in rows if not row["success"]]
    assert no_temp_files(tmp_path / "first-copy") == []
    second_err = (tmp_path / "second.err").read_text()
    assert (tmp_path / "second.rc").read_text().strip() == "0", second_err[-3000:]
    assert_resumed_clean(tmp_path / "after", episodes)
    assert no_temp_files(tmp_path / "after") == []
    assert leftover_processes(tmp_path) == []


def _fault_run(work: Path, fault: str, episodes: int = 16, at: int = 5) -> tuple[dict, Path, list[str]]:
    clock = work / "clock"
    clock.mkdir()
    rows = [{"agent": FAULT_AGENT, "task_ref": TASK, "seed": seed} for seed in (1, 2)]
    scenario = scenario_file(work / "faulty.json", rows)
    env = {
        "FIXTURE_CLOCK": str(clock), "FAULT": fault, "FAULT_AT": str(at), "FAULT_OUT": str(work / "out"),
        "FAULT_DONE": str(work / "fault-done"),
    }  # fmt: skip
    args = ["--scenario", str(scenario), "--episodes", str(episodes), "--workers", "2", "--output-dir", str(work / "out")]
    return env, scenario, args


@pytest.mark.parametrize("fault", ["rename", "remove"])
def test_the_output_folder_moved_or_removed_mid_run_stops_resumably_and_resume_finishes(tmp_path: Path, fault: str):
    episodes = 16
    env, _, args = _fault_run(tmp_path, fault, episodes)
    first = harness(*args, "--no-progress", cwd=tmp_path, env=env)
    assert first.returncode == 3, first.stderr[-3000:]
    assert "Traceback" not in first.stderr and "internal error" not in first.stderr
    last = first.stderr.strip().splitlines()[-1]
    assert last.startswith("tracecore-perf: run stopped: ") and "the run directory disappeared" in last, last
    assert (tmp_path / "fault-done").exists()
    run_dir = resume_dir(first.stderr)
    if fault == "rename":  # finished from where it is now, its rows and artifacts with it
        assert run_dir.parent == tmp_path / "out-moved" and "was moved to" in last
        out = tmp_path / "out-moved"
    else:  # made again at its place, with the rows the writer kept
        assert run_dir.parent == tmp_path / "out" and "was removed during the run" in last
        out = tmp_path / "out"
    assert (run_dir / "manifest.json").is_file()
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "interrupted"
    rows = [json.loads(line) for line in (run_dir / "series.jsonl").read_bytes().splitlines()]
    assert all(row["success"] for row in rows)  # the episodes the fault hit have no row
    assert not list(out.glob("perf-*.json"))  # nothing published for a run that left its place
    resumed = harness("--resume", str(run_dir), "--json", cwd=tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_resumed_clean(out, episodes)
    assert no_temp_files(out) == []
    assert leftover_processes(tmp_path) == []


def test_write_permission_lost_mid_run_stops_resumably_and_resume_finishes(tmp_path: Path):
    if reason := _namespaces_usable():
        pytest.skip(reason)
    episodes = 16
    env, _, args = _fault_run(tmp_path, "readonly", episodes)
    command = " ".join([PY, "-m", "tracecore_perf", *args, "--no-progress"])
    script = f"""
        {command} >first.out 2>first.err
        echo $? >first.rc
        umount out/run-*/.agent_bench/runs || exit 98
        {PY} -m tracecore_perf --resume "$(ls -d {tmp_path}/out/run-*)" --json >second.out 2>second.err
        echo $? >second.rc
    """
    done = in_namespace(tmp_path, script, env)
    assert done.returncode == 0, done.stderr
    first_err = (tmp_path / "first.err").read_text()
    assert (tmp_path / "first.rc").read_text().strip() == "3", first_err[-3000:]
    last = first_err.strip().splitlines()[-1]
    assert last.startswith("tracecore-perf: run stopped: ") and "Read-only file system" in last, last
    run_dir = resume_dir(first_err)
    assert run_dir.parent == tmp_path / "out"
    second_err = (tmp_path / "second.err").read_text()
    assert (tmp_path / "second.rc").read_text().strip() == "0", second_err[-3000:]
    assert_resumed_clean(tmp_path / "out", episodes)
    assert no_temp_files(tmp_path / "out") == []
    assert leftover_processes(tmp_path) == []


def _started_until_its_run_directory_appears(tmp_path: Path, episodes: int) -> subprocess.Popen:
    """A new run of ``episodes`` into ``tmp_path/out``, returned as soon as its run directory appears."""
    proc = subprocess.Popen(
        [PY, "-m", "tracecore_perf", "--episodes", str(episodes), "--workers", "2", "--output-dir", str(tmp_path / "out")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=harness_env(tmp_path),
    )  # fmt: skip
    wait_for(lambda: list((tmp_path / "out").glob("run-*")), proc=proc, watch=[tmp_path], what="the run directory",
             every_s=0.001)  # fmt: skip
    return proc


def test_ctrl_c_as_the_run_directory_appears_leaves_a_run_resume_finishes(tmp_path: Path):
    proc = _started_until_its_run_directory_appears(tmp_path, 6)
    proc.send_signal(signal.SIGINT)
    _, err = communicate(proc, watch=[tmp_path])
    assert proc.returncode == 130, err
    (run_dir,) = (tmp_path / "out").glob("run-*")
    last = err.strip().splitlines()[-1]
    assert last.startswith("tracecore-perf: interrupted; to finish the run: ") and f"--resume {run_dir}" in last, err
    assert (run_dir / "manifest.json").is_file()
    assert not list((tmp_path / ".tmp").glob("tracecore-perf-*"))
    resumed = harness("--resume", str(run_dir), "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads(resumed.stdout)["summary"]
    assert summary["episodes"] == 6 and summary["failure_count"] == 0 and summary["integrity"]["clean"]


def test_killed_outright_as_the_run_directory_appears_leaves_a_run_resume_finishes(tmp_path: Path):
    """kill -9 cannot be held back as Ctrl-C is: the run directory appears with its manifest in
    it, in one step, so whenever the harness dies after it appears, --resume takes the run."""
    proc = _started_until_its_run_directory_appears(tmp_path, 4)
    proc.kill()
    communicate(proc)
    (run_dir,) = (tmp_path / "out").glob("run-*")
    assert (run_dir / "manifest.json").is_file()
    resumed = harness("--resume", str(run_dir), "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads(resumed.stdout)["summary"]
    assert summary["episodes"] == 4 and summary["failure_count"] == 0 and summary["integrity"]["clean"]
