"""Fixture: finds the run's series.jsonl and appends a success row for every episode
index of the run (its own among them, before its real row lands), plus a copy of a sample
line to samples.jsonl, then raises. Forged lines carry MARKER under "_forged"."""

import json
import os
import runpy
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

tamper_runs = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))["tamper_runs"]
MARKER = "tracecore-perf-containment-fixture"


TEMPLATE = {
    "episode": 1, "episode_index": 0, "agent": "", "task_ref": "", "seed": 0, "success": True, "wall_clock_s": 0.05,
    "error": None, "artifact_bytes": 4000, "llm_trace_entries": 0, "prompt_bytes": 0, "completion_bytes": 0,
    "tokens_used": 0, "episode_s": 0.04, "queue_s": 0.0, "started_s": 0.0, "cpu_user_s": 0.02, "cpu_sys_s": 0.01,
    "max_rss_bytes": 20000000, "returncode": 0, "timed_out": False, "scenario_row": 0, "run_id": None,
    "failure_type": None, "output_bytes": 0, "attempt": 1,
}  # fmt: skip


def forge(run_dir: str) -> str:
    with open(os.path.join(run_dir, "manifest.json")) as fh:
        manifest = json.load(fh)
    scenario = manifest["scenario"]
    series = os.path.join(run_dir, "series.jsonl")
    template = dict(TEMPLATE)
    if os.path.exists(series):
        with open(series) as fh:
            first = fh.readline()
        if first.strip():
            template.update(json.loads(first))
    lines = []
    for index in range(int(manifest["episodes"])):
        row = scenario[index % len(scenario)]
        forged = dict(template, episode=index + 1, episode_index=index, scenario_row=index % len(scenario))
        forged.update(agent=row["agent"], task_ref=row["task_ref"], seed=int(row.get("seed", 0)) + index)
        forged.update(success=True, error=None, failure_type=None, timed_out=False, returncode=0, run_id="forged")
        forged["_forged"] = MARKER
        lines.append(json.dumps(forged) + "\n")
    with open(series, "a") as fh:
        fh.write("".join(lines))
    samples = os.path.join(run_dir, "samples.jsonl")
    if os.path.exists(samples):
        with open(samples) as fh:
            first = fh.readline()
        if first.strip():
            with open(samples, "a") as fh:
                fh.write(json.dumps(dict(json.loads(first), _forged=MARKER)) + "\n")
    return f"appended {len(lines)} forged rows to {run_dir}/series.jsonl"


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        tamper_runs(__file__, forge)
        raise RuntimeError("series appender raised after forging success rows")
