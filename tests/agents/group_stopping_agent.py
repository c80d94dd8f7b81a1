"""Fixture: SIGSTOPs the zygote's whole process group (the group of its worker's parent), then
exits 0 without a result. No other slot's worker may be in that group."""

import os
import runpy
import signal
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

tools = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        zygote = tools["parent_of"](os.getppid())
        if "zygote" in tools["cmdline"](zygote):  # never the test runner's group
            os.killpg(os.getpgid(zygote), signal.SIGSTOP)
        os._exit(0)
