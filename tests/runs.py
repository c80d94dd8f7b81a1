"""Helpers for the verdict tests: a real run of a scenario through the CLI, and series rows
built by hand for trends that need hundreds of episodes."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import AGENTS, harness, scenario_file

TASK = "filesystem_hidden_config@1"
TOY = "agents/toy_agent.py"


def fixture_agent(name: str) -> str:
    return str(AGENTS / f"{name}.py")


def real_run(
    work: Path, name: str, agents: list[str], episodes: int, *extra: str, env: dict | None = None, task: str = TASK
) -> Path:
    """Run ``episodes`` real episodes of ``agents`` (one scenario row each, on ``task``; no
    agents: the default scenario of shipped agents) with two workers; returns the run
    directory, which `check`/`compare` accept as RUN."""
    out = work / name
    clock = work / f"{name}-clock"  # the fixture agents' shared episode counter
    clock.mkdir()
    rows = [{"agent": agent, "task_ref": task, "seed": 1} for agent in agents]
    scenario = ["--scenario", str(scenario_file(work / f"{name}.json", rows))] if rows else []
    done = harness(
        "--episodes",
        str(episodes),
        "--workers",
        "2",
        "--no-progress",
        *scenario,
        "--output-dir",
        str(out),
        *extra,
        cwd=work,
        env={"FIXTURE_CLOCK": str(clock), **(env or {})},
    )
    assert done.returncode in (0, 1), done.stderr
    (run_dir,) = out.glob("run-*")
    return run_dir


def check_json(work: Path, *args: str) -> tuple[int, dict]:
    done = harness("check", *args, "--format", "json", cwd=work)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def finding_names(verdict: dict) -> list[str]:
    return sorted(f["code"] for f in verdict["findings"])


def row(index: int, *, agent: str = "a.py", task: str = TASK, seed: int | None = None, wall: float = 0.05, **fields):
    """One hand-built series row (for trends that need hundreds of episodes)."""
    from tracecore_perf.models import EpisodeRow

    values = {
        "episode": index + 1,
        "episode_index": index,
        "agent": agent,
        "task_ref": task,
        "seed": index if seed is None else seed,
        "success": True,
        "wall_clock_s": wall,
        "error": None,
        "artifact_bytes": 4000,
        "llm_trace_entries": 0,
        "prompt_bytes": 0,
        "completion_bytes": 0,
        "tokens_used": 0,
        "episode_s": wall * 0.8,
        "queue_s": 0.0,
        "started_s": index * 0.05,
        "cpu_user_s": 0.02,
        "cpu_sys_s": 0.01,
        "max_rss_bytes": 20_000_000,
        "returncode": 0,
        "timed_out": False,
        "scenario_row": 0,
    }
    values.update(fields)
    return EpisodeRow(**values)
