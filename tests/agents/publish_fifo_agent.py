"""Fixture: plants FIFOs at every name the harness publishes to and at the temporary names it
used to write them through, then raises. Opening any of them to write blocks until someone
reads: publishing must neither wait on them nor lose the run."""

import os
import runpy
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

tools = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))


def plant(run_dir: str) -> str:
    names = tools["publishing_names"](run_dir)
    for name in names:
        if not os.path.lexists(name):
            os.mkfifo(name)
    return f"planted {len(names)} FIFOs"


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        tools["tamper_runs"](__file__, plant)
        raise RuntimeError("publish FIFO planter raised after planting FIFOs")
