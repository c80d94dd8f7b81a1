"""Fixture: the toy agent, slower the more episodes of the run started before it. An agent
cannot see its episode index; the count of files in the test's FIXTURE_CLOCK folder (one per
episode started) is the honest clock."""

import os
import tempfile
import time

from agent_bench.agents.toy_agent import ToyAgent


def episodes_before() -> int:
    """How many episodes of this run started before this one: each episode leaves a file in
    the folder the test names in FIXTURE_CLOCK (episodes run in scratch directories of their
    own, so they share no other place)."""
    clock = os.environ["FIXTURE_CLOCK"]
    count = len(os.listdir(clock))
    fd, _ = tempfile.mkstemp(dir=clock)
    os.close(fd)
    return count

SECONDS_PER_EPISODE_DONE = 0.006


class Agent(ToyAgent):
    slept = False

    def act(self):
        if not self.slept:
            self.slept = True
            done = episodes_before()
            time.sleep(SECONDS_PER_EPISODE_DONE * done)
        return super().act()
