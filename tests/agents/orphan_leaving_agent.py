"""Fixture: leaves a shell with a child of its own running (marked), then SIGKILLs the zygote
and its own worker, so the shell lands on the harness; killing the shell re-parents its child
there too. Nothing of it may outlive the run. Then raises."""

import os
import runpy
import signal
import subprocess
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

signal_zygote = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))["signal_zygote"]
MARKER = os.environ.get("HOSTILE_MARKER", "tracecore-perf-containment-fixture")


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        subprocess.Popen(["sh", "-c", f"sleep 120 & exec sleep 121 # {MARKER}", MARKER],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        signal_zygote(signal.SIGKILL, "killing")
        os.kill(os.getppid(), signal.SIGKILL)
        raise RuntimeError("orphan leaver raised")
