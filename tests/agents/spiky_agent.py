"""Fixture: the toy agent, but about two episodes in ten stall for 2 s (when the count of
episodes started before it, from the test's FIXTURE_CLOCK folder, ends in 6 or 7)."""

import runpy
import time
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

episodes_before = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))["episodes_before"]

STALL_S = 2.0  # far above what a loaded host (3x and more slower) makes of a ~50 ms episode


class Agent(ToyAgent):
    checked = False

    def act(self):
        if not self.checked:
            self.checked = True
            done = episodes_before()
            if done % 10 in (6, 7):
                time.sleep(STALL_S)
        return super().act()
