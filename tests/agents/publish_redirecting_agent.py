"""Fixture: plants symlinks to a file outside the run (HOSTILE_VICTIM) at every name the
harness publishes to and at the temporary names it used to write them through
(``<output>/.perf-<kind>-<stamp>.json.tmp``, ``run-<stamp>/.manifest.json.tmp``), then raises.
Nothing outside the run may be written through them."""

import os
import runpy
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

tools = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))


def plant(run_dir: str) -> str:
    victim = os.environ["HOSTILE_VICTIM"]
    names = tools["publishing_names"](run_dir)
    for name in names:
        if not os.path.lexists(name):
            os.symlink(victim, name)
    return f"planted {len(names)} links to {victim}"


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        tools["tamper_runs"](__file__, plant)
        raise RuntimeError("publish redirector raised after planting links")
