"""Fixture: SIGSTOPs the zygote (its worker's parent), then raises. A stopped zygote
answers nothing (no new workers, no metrics, no goodbye): the run must still end and publish,
and the stopped zygote must not outlive it."""

import runpy
import signal
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

signal_zygote = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))["signal_zygote"]


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        signal_zygote(signal.SIGSTOP, "stopping")
        raise RuntimeError("zygote stopper raised after stopping the zygote")
