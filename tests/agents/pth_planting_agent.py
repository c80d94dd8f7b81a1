"""Fixture: drops a .pth file into its interpreter's site directory (every interpreter started
from there reads it at start-up: an `import` line in it runs code; this one only names a
folder that does not exist), then kills its zygote, so a new one would start from there."""

import os
import runpy
import signal
import site
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

signal_zygote = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))["signal_zygote"]
NAME = "tracecore_perf_containment_fixture.pth"


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        with open(os.path.join(site.getsitepackages()[0], NAME), "w") as fh:
            fh.write("/nonexistent/tracecore-perf-containment-fixture\n")
        signal_zygote(signal.SIGKILL, "killing")
        raise RuntimeError("pth planter raised after planting and killing the zygote")
