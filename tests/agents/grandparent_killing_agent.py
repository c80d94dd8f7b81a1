"""Fixture: SIGKILLs its grandparent (its worker's parent: the zygote, or whatever adopted the
worker since), sparing only the test runner (HOSTILE_SPARE_PID), then raises. Run again and
again, it must never reach the harness."""

import os
import runpy
import signal
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

parent_of = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))["parent_of"]


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        grandparent = parent_of(os.getppid())
        if grandparent > 1 and str(grandparent) != os.environ.get("HOSTILE_SPARE_PID"):
            print(f"killing grandparent {grandparent}", flush=True)
            os.kill(grandparent, signal.SIGKILL)
        raise RuntimeError("grandparent killer raised after killing its grandparent")
