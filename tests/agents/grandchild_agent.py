"""Fixture: starts a grandchild in its own session (so it escapes the episode's process
group) that outlives the episode, then hangs in act()."""

import subprocess
import sys
import time

from agent_bench.agents.toy_agent import ToyAgent

MARKER = "tracecore-perf-fixture-grandchild"


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        subprocess.Popen(
            [sys.executable, "-c", f"import time; time.sleep(3600)  # {MARKER}"],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while True:
            time.sleep(3600)
