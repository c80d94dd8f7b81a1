"""An agent file's top-level code runs when the harness checks it, before any episode: it runs
in a process of its own that holds nothing of the run's, confined as the episodes will be.

Each hostile fixture fails to load (so the run must refuse it: one line, exit 2, nothing
written) and says in its error what it could reach; the tests read that from the emitted
line, and check the places it tried to write."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest

from conftest import AGENTS, harness, scenario_file

pytestmark = pytest.mark.slow  # the agent file is loaded by the episode interpreter


def _refusal(tmp_path: Path, agent: Path, *args: str, env: dict | None = None) -> str:
    out = tmp_path / "out"
    rows = [{"agent": "agents/toy_agent.py", "task_ref": "filesystem_hidden_config@1", "seed": 1},
            {"agent": str(agent), "task_ref": "filesystem_hidden_config@1", "seed": 1}]  # fmt: skip
    done = harness("--output-dir", "out", "--episodes", "2", "--scenario", str(scenario_file(tmp_path / "s.json", rows)),
                   *args, cwd=tmp_path, env=env)  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stdout + done.stderr
    assert lines[0].startswith(f"tracecore-perf: error: agent not found: {agent}: "), lines[0]
    written = [path.name for path in out.iterdir() if path.name != "earlier-run"] if out.exists() else []
    assert written == [], written
    return lines[0]


def _copy(tmp_path: Path, name: str) -> Path:
    agent = tmp_path / "agents" / f"{name}.py"
    agent.parent.mkdir(exist_ok=True)
    shutil.copy(AGENTS / f"{name}.py", agent)
    return agent


@pytest.mark.parametrize("isolation", ["forkserver", "spawn"])
def test_forged_answers_on_every_descriptor_cost_the_agent_a_refusal(tmp_path: Path, isolation: str):
    line = _refusal(tmp_path, _copy(tmp_path, "load_forging_agent"), "--isolation", isolation)
    assert "forged every descriptor, then failed to load" in line or "not the check's" in line, line


def test_the_refusal_is_one_line_without_the_agents_escapes(tmp_path: Path):
    line = _refusal(tmp_path, _copy(tmp_path, "load_escape_agent"))
    assert "\x1b" not in line and "0 failed" in line, line  # _refusal: one line on stderr


def _reach(line: str) -> dict:
    marker = "RuntimeError: reach "
    assert marker in line, line
    return json.loads(line.split(marker, 1)[1])


@pytest.fixture
def listeners():
    """A TCP listener and an abstract Unix socket for the fixture to try."""
    name = f"tracecore-perf-test-{os.getpid()}-{id(object())}"
    with socket.create_server(("127.0.0.1", 0)) as tcp, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as abstract:
        abstract.bind("\0" + name)
        abstract.listen()
        yield {"HOSTILE_PORT": str(tcp.getsockname()[1]), "HOSTILE_ABSTRACT": name}


def _env(tmp_path: Path, listeners: dict) -> dict:
    secret = tmp_path / "out" / "earlier-run" / "secret.txt"  # the output folder: what --sandbox hides
    secret.parent.mkdir(parents=True)
    secret.write_text("s3cret")
    return {
        **listeners,
        "HOSTILE_OUTSIDE": str(tmp_path / "escaped.txt"),
        "HOSTILE_SECRET": str(secret),
        "HOSTILE_WATCH_PID": str(os.getpid()),
    }


def test_the_check_holds_no_descriptor_of_the_run(tmp_path: Path, listeners: dict):
    """Without --sandbox the check runs as the user (it could write and connect, as an episode
    could: the sandboxed test below shows those closed), but holds no socket, nothing but
    stdin, stdout, stderr (all /dev/null) and its answer pipe."""
    env = _env(tmp_path, listeners)
    reach = _reach(_refusal(tmp_path, _copy(tmp_path, "load_reach_agent"), env=env))
    assert reach["sockets"] == [], reach
    assert len(reach["fds"]) <= 5, reach  # 0, 1, 2, the answer pipe, and the listing's own
    # the escapes work here, so the denials under --sandbox below are the sandbox's doing
    assert reach["wrote"] and reach["read"] == "s3cret" and reach["sees_pid"] and reach["tcp"], reach


def test_under_sandbox_the_check_reaches_nothing(tmp_path: Path, listeners: dict):
    env = _env(tmp_path, listeners)
    # relative --output-dir (as the default is): the sandbox still hides it
    reach = _reach(_refusal(tmp_path, _copy(tmp_path, "load_reach_agent"), "--sandbox", env=env))
    assert reach["sockets"] == [], reach
    assert reach == {**reach, "wrote": False, "read": None, "sees_pid": False, "tcp": False, "abstract": False}, reach
    assert not (tmp_path / "escaped.txt").exists()


def test_under_instructions_the_check_cannot_start_a_process(tmp_path: Path):
    if shutil.which("valgrind") is None:
        pytest.skip("--instructions needs valgrind")
    agent = tmp_path / "agents" / "spawning_at_import_agent.py"
    agent.parent.mkdir()
    flag = tmp_path / "started.txt"
    agent.write_text(
        "import subprocess, sys\n"
        f"subprocess.run([sys.executable, '-c', 'open(' + repr({str(flag)!r}) + ', \"w\")'])\n"
        "from agent_bench.agents.toy_agent import ToyAgent as Agent\n"
    )
    line = _refusal(tmp_path, agent, "--instructions")
    assert "PermissionError" in line and "Operation not permitted" in line, line
    assert not flag.exists()
