"""Fixture: finds the run directory and deletes its .agent_bench directory (TraceCore's
run artifacts of every episode so far), then raises."""

import runpy
import shutil
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

delete_in_runs = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))["delete_in_runs"]
MARKER = "tracecore-perf-containment-fixture"


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        delete_in_runs(__file__, ".agent_bench", shutil.rmtree)
        raise RuntimeError("artifact deleter raised after deleting the run's .agent_bench")
