"""Fixture: SIGKILLs the zygote (its worker's parent), then raises. Every worker
of the run loses its parent; episodes in flight on other workers must not lose their rows,
and the run must go on (a new zygote) and publish."""

import runpy
import signal
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

signal_zygote = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))["signal_zygote"]


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        signal_zygote(signal.SIGKILL, "killing")
        raise RuntimeError("zygote killer raised after killing the zygote")
