"""Fixture: finds the run's series.jsonl and rewrites it in place (same file, so the
harness's open handle keeps appending to it): every row it holds becomes a success carrying
MARKER under "_forged", failures included. Then raises."""

import json
import os
import runpy
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

tamper_runs = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))["tamper_runs"]
MARKER = "tracecore-perf-containment-fixture"


def rewrite(run_dir: str) -> str:
    series = os.path.join(run_dir, "series.jsonl")
    with open(series, "r+") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
        for row in rows:
            row.update(success=True, error=None, failure_type=None, _forged=MARKER)
        fh.seek(0)
        fh.write("".join(json.dumps(row) + "\n" for row in rows))
        fh.truncate()
    return f"rewrote {len(rows)} rows of {run_dir}/series.jsonl"


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        tamper_runs(__file__, rewrite)
        raise RuntimeError("series rewriter raised after rewriting the series")
