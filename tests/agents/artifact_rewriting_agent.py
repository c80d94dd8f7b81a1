"""Fixture: rewrites, in place, the TraceCore artifacts other episodes of its run left in
``.agent_bench/runs``: ``success`` flipped to false with a forged failure, and 400 kB of
padding. Then raises. No forged figure may be published as fact."""

import json
import os
import runpy
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

tools = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))
MARKER = "tracecore-perf-containment-fixture"


def rewrite(run_dir: str) -> str:
    runs = os.path.join(run_dir, ".agent_bench", "runs")
    count = 0
    for name in sorted(os.listdir(runs)):
        path = os.path.join(runs, name)
        with open(path, "r+", encoding="utf-8") as fh:  # the same file, rewritten in place
            artifact = json.load(fh)
            artifact.update(success=False, failure_type="forged_by_fixture", failure_reason=MARKER, padding="x" * 400_000)
            fh.seek(0)
            json.dump(artifact, fh, indent=2)
            fh.truncate()
        count += 1
    return f"rewrote {count} artifacts in {runs}"


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        tools["tamper_runs"](__file__, rewrite)
        raise RuntimeError("artifact rewriter raised after rewriting artifacts")
