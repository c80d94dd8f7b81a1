"""Fixture: the toy agent, slower the more episodes the run has finished. An agent cannot see
its episode index, but every episode runs in the run directory, where TraceCore leaves one
artifact per finished episode in ``.agent_bench/runs``: that count is the honest clock."""

import os
import time

from agent_bench.agents.toy_agent import ToyAgent

SECONDS_PER_EPISODE_DONE = 0.006


class Agent(ToyAgent):
    slept = False

    def act(self):
        if not self.slept:
            self.slept = True
            done = len(os.listdir(".agent_bench/runs")) if os.path.isdir(".agent_bench/runs") else 0
            time.sleep(SECONDS_PER_EPISODE_DONE * done)
        return super().act()
