"""Fixture: plants plain files where the evidence check sets things aside (``tainted`` in the
run directory), drops a stranger into ``.agent_bench/runs`` and flips the run's failed rows to
successes in series.jsonl, then raises. The check must still complete and taint the run."""

import json
import os
import runpy
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

tamper_runs = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))["tamper_runs"]
MARKER = "tracecore-perf-containment-fixture"


def block_and_flip(run_dir: str) -> str:
    with open(os.path.join(run_dir, "tainted"), "w") as fh:
        fh.write(MARKER)
    with open(os.path.join(run_dir, ".agent_bench", "runs", "stranger.json"), "w") as fh:
        json.dump({"run_id": "stranger", "success": True, "_forged": MARKER}, fh)
    series = os.path.join(run_dir, "series.jsonl")
    with open(series) as fh:
        rows = [json.loads(line) for line in fh]
    for row in rows:
        if not row["success"]:
            row.update(success=True, error=None, returncode=0, failure_type=None, _forged=MARKER)
    with open(series, "w") as fh:
        fh.write("".join(json.dumps(row) + "\n" for row in rows))
    return f"blocked {run_dir}/tainted and flipped {len(rows)} rows"


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        tamper_runs(__file__, block_and_flip)
        raise RuntimeError("aside blocker raised")
