"""Fixture: the toy agent, but about two episodes in ten stall for 0.8 s (when the count of
episodes started before it, from the test's FIXTURE_CLOCK folder, ends in 6 or 7)."""

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

STALL_S = 0.8


class Agent(ToyAgent):
    checked = False

    def act(self):
        if not self.checked:
            self.checked = True
            done = episodes_before()
            if done % 10 in (6, 7):
                time.sleep(STALL_S)
        return super().act()
