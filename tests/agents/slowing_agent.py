"""Fixture: the toy agent, slower the more episodes of the run started before it. An agent
cannot see its episode index; the count of files in the test's FIXTURE_CLOCK folder (one per
episode started) is the honest clock."""

import runpy
import time
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

episodes_before = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))["episodes_before"]

SECONDS_PER_EPISODE_DONE = 0.02  # the last third waits ~0.5-0.7 s more than the first: far beyond a loaded host's own slowing


class Agent(ToyAgent):
    slept = False

    def act(self):
        if not self.slept:
            self.slept = True
            done = episodes_before()
            time.sleep(SECONDS_PER_EPISODE_DONE * done)
        return super().act()
