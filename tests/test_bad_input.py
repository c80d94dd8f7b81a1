"""Bad input: one line on stderr naming the problem, exit 2, before any episode starts,
and nothing written.

What the command line alone can tell (flags, the scenario file's shape, the output folder) is
checked in process, in the fast layer, whose guard fails a test that starts a process: so
these tests also prove that such input starts none. What needs the episode interpreter
(agents, task refs, a --python without TraceCore) runs the harness for real (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracecore_perf.cli import main

from conftest import AGENTS, harness, scenario_file


def _row(agent="agents/toy_agent.py", task_ref="filesystem_hidden_config@1", seed=1):
    return {"agent": agent, "task_ref": task_ref, "seed": seed}


CASES = {
    "zero episodes": (["--episodes", "0"], "--episodes: must be at least 1"),
    "negative episodes": (["--episodes", "-3"], "--episodes: must be at least 1"),
    "non-numeric episodes": (["--episodes", "many"], "--episodes: not a whole number"),
    "zero workers": (["--workers", "0"], "--workers: must be at least 1"),
    "zero timeout": (["--timeout", "0"], "--timeout: must be a positive number"),
    "negative timeout": (["--timeout", "-1"], "--timeout: must be a positive number"),
    "unknown flag": (["--episodez", "3"], "unknown option --episodez; did you mean --episodes?"),
    "bad isolation": (["--isolation", "thread"], "--isolation: invalid choice"),
    "missing scenario": (["--scenario", "nope.json"], "scenario file not found"),
    "python not executable": (["--python", "/nonexistent/python3"], "--python is not an executable file"),
    "counted per row, nothing counted": (
        ["--counted-per-row", "0"],
        "--counted-per-row chooses which episodes --instructions counts",
    ),
    "negative counted per row": (["--instructions", "--counted-per-row", "-1"], "--counted-per-row"),
}


def refused(capsys, monkeypatch, cwd: Path, *args: str) -> str:
    """``python -m tracecore_perf ARGS`` in process, in ``cwd``: exit 2 and one line, which is returned."""
    monkeypatch.chdir(cwd)
    code = main(list(args))
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("tracecore-perf: error: "), captured.err
    return lines[0]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_flags(tmp_path: Path, case: str, capsys, monkeypatch):
    args, message = CASES[case]
    out = tmp_path / "out"
    assert message in refused(capsys, monkeypatch, tmp_path, *args, "--output-dir", str(out))
    assert not out.exists()


SCENARIO_CASES = {
    "agent file missing": ([_row(agent="agents/no_such_agent.py")], "agent not found: agents/no_such_agent.py"),
    "own agent file missing": ([_row(agent="./mine/agent.py")], "agent not found: ./mine/agent.py"),
    "malformed task ref": ([_row(task_ref="filesystem hidden config@one")], "malformed task ref"),
    "unknown task": ([_row(task_ref="no_such_task@1")], "bad task ref 'no_such_task@1': no installed task"),
    "unknown task version": ([_row(task_ref="filesystem_hidden_config@99")], "no installed task"),
}
SCENARIO_FILE_CASES = {
    "empty scenario": ([], "has no rows"),
    "row without agent": ([{"task_ref": "dice_game@1"}], "row 1 has no 'agent'"),
    "non-integer seed": ([_row(seed="x")], "non-integer seed"),
}


@pytest.mark.parametrize("case", list(SCENARIO_FILE_CASES))
def test_bad_scenario_files(tmp_path: Path, case: str, capsys, monkeypatch):
    rows, message = SCENARIO_FILE_CASES[case]
    out = tmp_path / "out"
    scenario = str(scenario_file(tmp_path / "s.json", rows))
    assert message in refused(capsys, monkeypatch, tmp_path, "--scenario", scenario, "--output-dir", str(out))
    assert not out.exists()


@pytest.mark.slow  # the episode interpreter resolves agents and task refs
@pytest.mark.parametrize("case", list(SCENARIO_CASES))
def test_bad_scenarios(tmp_path: Path, case: str):
    rows, message = SCENARIO_CASES[case]
    out = tmp_path / "out"
    done = harness("--scenario", str(scenario_file(tmp_path / "s.json", rows)), "--output-dir", str(out), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert not out.exists()


def test_output_dir_that_is_a_file(tmp_path: Path, capsys, monkeypatch):
    target = tmp_path / "out"
    target.write_text("precious")
    assert "output directory is a file" in refused(capsys, monkeypatch, tmp_path, "--output-dir", str(target))
    assert target.read_text() == "precious"


def test_output_dir_under_a_file(tmp_path: Path, capsys, monkeypatch):
    (tmp_path / "f").write_text("x")
    assert "cannot be created" in refused(capsys, monkeypatch, tmp_path, "--output-dir", str(tmp_path / "f" / "out"))


def test_output_dir_not_writable(tmp_path: Path, capsys, monkeypatch):
    # /proc refuses new files even to root, so this holds whoever runs the suite.
    line = refused(capsys, monkeypatch, tmp_path, "--output-dir", "/proc/tracecore-perf-out")
    assert "output directory is not writable" in line


@pytest.mark.slow  # the bad task ref is found by the episode interpreter
def test_nothing_already_written_is_touched(tmp_path: Path):
    """A failing invocation into an existing output directory leaves it exactly as it was."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "perf-summary-20260101T000000Z.json").write_text("{}")
    before = sorted(p.name for p in out.iterdir())
    done = harness(
        "--scenario",
        str(scenario_file(tmp_path / "s.json", [_row(task_ref="nope@1")])),
        "--output-dir",
        str(out),
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert sorted(p.name for p in out.iterdir()) == before


@pytest.mark.slow  # real episodes
def test_users_own_agent_file_resolves_from_the_working_directory(tmp_path: Path):
    """A relative path to the user's own agent works, though episodes run in the run dir."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "agent.py").write_text((AGENTS / "llm_telemetry_agent.py").read_text())
    out = tmp_path / "out"
    done = harness(
        "--episodes",
        "1",
        "--workers",
        "1",
        "--output-dir",
        str(out),
        "--scenario",
        str(scenario_file(tmp_path / "s.json", [_row(agent="mine/agent.py")])),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.slow  # a venv and its interpreter
@pytest.mark.parametrize("isolation", ["forkserver", "spawn"])
def test_python_without_tracecore(tmp_path: Path, isolation: str):
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True)
    out = tmp_path / "out"
    done = harness("--python", str(tmp_path / "bare" / "bin" / "python"), "--isolation", isolation,
                   "--output-dir", str(out), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "No module named 'agent_bench'" in lines[0], done.stderr
    assert not out.exists()


EXPORT_CASES = {
    "no such run": (["export", "20990101T000000Z", "--format", "bmf", "--search-dir", "."], "has no published manifest"),
    "unknown format": (["export", "x", "--format", "csv"], "--format: invalid choice"),
    "output is a folder": (["export", "x", "--format", "bmf", "--output", "."], "--output must be a file"),
    "output with a trailing slash": (["export", "x", "--output", "new/"], "--output must be a file, not a folder"),
    "output in no folder": (["export", "x", "--output", "no/such/f.json"], "--output must be a file in an existing folder"),
    "output over evidence": (["export", "x", "--output", "perf-manifest-20260101T000000Z.json"], "published run's file"),
    "output over a device": (["export", "x", "--output", "/dev/null"], "is a device file, not a regular file: not written"),
    "matrix fail-on": (["matrix", "m.toml", "--fail-on", "always"], "--fail-on: invalid choice"),
}


@pytest.mark.parametrize("case", list(EXPORT_CASES))
def test_bad_export_and_matrix_flags(tmp_path: Path, case: str, capsys, monkeypatch):
    args, message = EXPORT_CASES[case]
    assert message in refused(capsys, monkeypatch, tmp_path, *args)
    assert list(tmp_path.iterdir()) == []


def test_export_output_is_never_written_through_a_link(tmp_path: Path, capsys, monkeypatch):
    target = tmp_path / "target.json"
    target.write_text("kept")
    (tmp_path / "link.json").symlink_to(target)
    line = refused(capsys, monkeypatch, tmp_path, "export", "x", "--output", "link.json")
    assert "is a symbolic link: nothing is written through a link" in line
    assert target.read_text() == "kept" and (tmp_path / "link.json").is_symlink()


def test_a_tracecore_older_than_the_oldest_release_is_refused_by_name():
    from tracecore_perf.errors import UsageError
    from tracecore_perf.run.harness import _check_tracecore_release

    for version in ("0.9.4", "0.8.12", "0.9"):
        with pytest.raises(UsageError, match=rf"has TraceCore {version}; episodes need TraceCore 0\.9\.5 or newer"):
            _check_tracecore_release("/env/bin/python", version)
    for version in ("0.9.5", "1.0.0", "1.1.3", "2.0.0rc1", "unknown"):
        _check_tracecore_release("/env/bin/python", version)


@pytest.mark.slow  # the agent file is loaded by the episode interpreter
@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("import os\nos._exit(9)\n", "the process loading it ended (exit code 9)"),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", "the process loading it ended (killed by signal SIGKILL)"),
        ("raise RuntimeError('broken at import')\n", "RuntimeError: broken at import"),
    ],
    ids=["exits", "killed", "raises"],
)
def test_an_agent_file_that_dies_as_it_is_loaded_is_one_line_naming_it(tmp_path: Path, source: str, says: str):
    agent = tmp_path / "dying_agent.py"
    agent.write_text(source)
    out = tmp_path / "out"
    done = harness("--output-dir", str(out), "--scenario", str(scenario_file(tmp_path / "s.json", [_row(agent=str(agent))])),
                   cwd=tmp_path)  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith(f"tracecore-perf: error: agent not found: {agent}: ") and says in lines[0], lines[0]
    assert not out.exists()
