"""Fixture: the toy agent, but about two episodes in ten stall for 0.8 s (when the count
of finished episodes in the run directory's ``.agent_bench/runs`` ends in 6 or 7)."""

import os
import time

from agent_bench.agents.toy_agent import ToyAgent

STALL_S = 0.8


class Agent(ToyAgent):
    checked = False

    def act(self):
        if not self.checked:
            self.checked = True
            done = len(os.listdir(".agent_bench/runs")) if os.path.isdir(".agent_bench/runs") else 0
            if done % 10 in (6, 7):
                time.sleep(STALL_S)
        return super().act()
