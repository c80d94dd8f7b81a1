"""Warm-up: episodes of each row that the zygote runs and discards before forking workers.
The zygote's side (``run/episode/warmup.rehearse``) runs in-process here with fixture agents that
raise or hang: a row that fails is named and left cold, never the run's end. The run's side is
checked on a real run."""

from __future__ import annotations

import gc
import json

import pytest

from tracecore_perf.run.episode import warmup

from conftest import AGENTS, harness, published, scenario_file

TASK = "filesystem_hidden_config@1"


def rehearse(tmp_path, agent: str, deadline_s: float = 600.0) -> list[str]:
    row = {"agent": agent, "agent_label": agent, "task_ref": TASK, "seed": 1}
    try:
        return warmup.rehearse({"rows": [row], "episodes": 2, "scratch_root": str(tmp_path), "deadline_s": deadline_s})
    finally:
        gc.unfreeze()  # rehearse freezes what it allocated, as the zygote wants; this process does not


def test_a_healthy_row_warms_without_a_note(tmp_path):
    from agent_bench.agent.loader import AGENTS_PACKAGE_ROOT

    assert rehearse(tmp_path, str(AGENTS_PACKAGE_ROOT / "toy_agent.py")) == []
    assert list(tmp_path.iterdir()) == []  # its scratch directory is gone


def test_a_row_whose_agent_raises_is_named_and_left_cold(tmp_path):
    (note,) = rehearse(tmp_path, str(AGENTS / "raising_agent.py"))
    assert note.startswith("row 0 (") and "RuntimeError: fixture agent exploded on purpose" in note


def test_a_row_whose_agent_hangs_is_cut_off_at_the_deadline(tmp_path):
    (note,) = rehearse(tmp_path, str(AGENTS / "hanging_agent.py"), deadline_s=0.3)
    assert "ran past 0.3 s" in note


def test_the_warm_up_freezes_nothing_and_leaves_the_verdict_to_start(tmp_path, monkeypatch):
    """gc.collect() + gc.freeze() after warm() and rehearse(), and the workers' verdict loaded
    before warm_runtime()'s source caches, each made every episode forked afterwards dearer
    (scripts/warmup_cost.py, docs/profile.md): the warm-up does neither. zygote.start loads
    the verdict after warm_runtime()."""
    from agent_bench.agent.loader import AGENTS_PACKAGE_ROOT

    from tracecore_perf.run.episode import spec

    loaded: list[str] = []
    monkeypatch.setattr(spec, "warm_verdict", lambda: loaded.append("verdict"))
    monkeypatch.setattr(warmup, "warm_verdict", lambda: loaded.append("verdict"), raising=False)
    gc.unfreeze()
    row = {"agent": str(AGENTS_PACKAGE_ROOT / "toy_agent.py"), "agent_label": "toy", "task_ref": TASK, "seed": 1}
    try:
        warmup.warm_runtime()
        warmup.warm([row])
        assert gc.get_freeze_count() == 0
        assert warmup.rehearse({"rows": [row], "episodes": 1, "scratch_root": str(tmp_path), "deadline_s": 600}) == []
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
    assert loaded == []


@pytest.mark.slow
def test_a_run_warms_the_shipped_agents_and_not_a_users_own(tmp_path):
    rows = [
        {"agent": "agents/toy_agent.py", "task_ref": TASK, "seed": 1},
        {"agent": str(AGENTS / "busy_agent.py"), "task_ref": TASK, "seed": 1},
    ]
    done = harness("--scenario", str(scenario_file(tmp_path / "s.json", rows)), "--episodes", "4", "--workers", "2",
                   "--output-dir", str(tmp_path / "out"), "--json", cwd=tmp_path)  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    manifest = published(tmp_path / "out", "manifest")
    assert manifest["settings"]["warmup"] == 1
    (note,) = manifest["warmup_notes"]
    assert note.startswith("1 scenario rows of your own agent files: their code compiled once but not run")
    assert json.loads(done.stdout)["summary"]["episodes"] == 4


# --- a task only a user's own agent files run (warmup.task_agent) ----------------------------


def test_a_task_only_own_agents_run_is_warmed_by_tracecores_shipped_agent_for_it(tmp_path):
    """A warm-up row with no agent (harness._warmup_rows gives one for a task that only the
    user's own agent files run): the zygote runs TraceCore's known-good shipped agent for the
    task, never a file of the user's; a task TraceCore pairs with none gets the harness's own
    agent, which loads the task and stops."""
    import sys

    from agent_bench.agent.loader import AGENTS_PACKAGE_ROOT

    assert warmup.task_agent(TASK) == "agents/toy_agent.py"
    assert warmup.task_agent("filesystem_hidden_config") == "agents/toy_agent.py"
    assert warmup.task_agent("no_such_task@1") == warmup.TASK_WARMING_AGENT
    row = {"agent": "", "agent_label": f"the task {TASK}", "task_ref": TASK, "seed": 1}
    try:
        assert warmup.rehearse({"rows": [row], "episodes": 1, "scratch_root": str(tmp_path), "deadline_s": 600}) == []
    finally:
        gc.unfreeze()
    # TraceCore's loader leaves the agent module it ran as ``openclaw_agent``
    assert sys.modules["openclaw_agent"].__file__ == str(AGENTS_PACKAGE_ROOT / "toy_agent.py")


def test_the_harnesss_own_task_warming_agent_loads_the_task_and_stops(tmp_path, monkeypatch):
    from agent_bench.runner.runner import run

    monkeypatch.chdir(tmp_path)
    artifact = run(warmup.TASK_WARMING_AGENT, TASK, 0)
    assert artifact["termination_reason"] == "invalid_action"
    assert [step["action"]["type"] for step in artifact["action_trace"]] == ["tracecore_perf_warm_up"]


# --- agent files compiled once (warmup.keep_compiled) ----------------------------------------

KEPT = """
import os, sys
from agent_bench.agent.loader import _load_module
from tracecore_perf.run.episode import warmup

path = sys.argv[1]
warmup.keep_compiled([path, path + ".missing"])  # a file it cannot read is left to the loader
with open(path, "w") as fh:  # what the loader would compile now: not what it runs
    fh.write("X = 2\\n")
first, second = _load_module(path), _load_module(path)
print(first.X, second.X, first is not second, os.path.isdir(os.path.join(os.path.dirname(path), "__pycache__")))
"""


@pytest.mark.slow  # a process of its own
def test_an_agent_file_is_compiled_once_and_every_load_takes_that_code(tmp_path):
    """In a process of its own (it changes how SourceFileLoader gets code, as the zygote does):
    an own agent file with no .pyc, on a host that writes none, is compiled once; TraceCore's
    loader then takes that code for every load (a new module each time, as each episode
    does), neither compiling its source again nor writing bytecode."""
    import os
    import subprocess
    import sys

    agent = tmp_path / "my_agent.py"
    agent.write_text("X = 1\n")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-c", KEPT, str(agent)], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1", "True", "False"]
