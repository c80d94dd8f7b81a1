"""Fixture: stretches every artifact already in its run to a terabyte with one truncate(2): a
sparse hole, no disk used. Hashing them whole would take the harness about an hour each.
Then raises."""

import os
import runpy
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

tools = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))


def stretch(run_dir: str) -> str:
    runs = os.path.join(run_dir, ".agent_bench", "runs")
    for name in os.listdir(runs):
        os.truncate(os.path.join(runs, name), 1 << 40)
    return f"stretched the artifacts in {runs}"


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        tools["tamper_runs"](__file__, stretch)
        raise RuntimeError("sparse artifact agent raised after stretching artifacts")
