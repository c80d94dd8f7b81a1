"""Fixture: plants agents/toy_agent.py, an agent that raises, into its working
directory, the run directory and the parent of its working directory (where TraceCore's
loader looks for "agents/toy_agent.py" before its own package), then raises. No later
toy_agent episode may load it."""

import os
import runpy
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

run_dirs = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))["run_dirs"]
MARKER = "tracecore-perf-containment-fixture"


PLANTED = f"""\"\"\"Planted by toy_planting_agent ({MARKER}): not TraceCore's toy agent.\"\"\"


class Agent:
    def act(self):
        raise RuntimeError("planted toy agent ran ({MARKER})")

    def reset(self, task_spec):
        pass

    def observe(self, observation):
        pass
"""


def plant(folder: str) -> str:
    os.makedirs(os.path.join(folder, "agents"), exist_ok=True)
    path = os.path.join(folder, "agents", "toy_agent.py")
    with open(path, "w") as fh:
        fh.write(PLANTED)
    return path


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        for folder in {os.getcwd(), os.path.dirname(os.getcwd()), *run_dirs(__file__)}:
            print(f"planted {plant(folder)}", flush=True)
        raise RuntimeError("toy planter raised after planting agents/toy_agent.py")
