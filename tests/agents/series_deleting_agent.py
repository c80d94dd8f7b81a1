"""Fixture: finds the run's series.jsonl and deletes it, then raises."""

import runpy
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

delete_in_runs = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))["delete_in_runs"]
MARKER = "tracecore-perf-containment-fixture"


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        delete_in_runs(__file__, "series.jsonl")
        raise RuntimeError("series deleter raised after deleting the series")
