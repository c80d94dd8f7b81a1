"""Fixture: finds the run directory and drops a forged, successful TraceCore artifact
(a copy of a real one, new run_id, MARKER under "_forged") into its .agent_bench/runs, then
raises."""

import glob
import json
import os
import runpy
import uuid
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

tamper_runs = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))["tamper_runs"]
MARKER = "tracecore-perf-containment-fixture"


def drop(run_dir: str) -> str:
    runs = os.path.join(run_dir, ".agent_bench", "runs")
    artifact = {"success": True, "failure_type": None, "failure_reason": None, "action_trace": []}
    real = sorted(glob.glob(os.path.join(glob.escape(runs), "*.json")))
    if real:
        with open(real[0]) as fh:
            artifact = json.load(fh)
    run_id = uuid.uuid4().hex
    artifact.update(run_id=run_id, trace_id=run_id, success=True, failure_type=None, failure_reason=None, _forged=MARKER)
    os.makedirs(runs, exist_ok=True)
    path = os.path.join(runs, f"{run_id}.json")
    with open(path, "w") as fh:
        json.dump(artifact, fh)
    return f"dropped {path}"


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        tamper_runs(__file__, drop)
        raise RuntimeError("artifact dropper raised after dropping a forged artifact")
