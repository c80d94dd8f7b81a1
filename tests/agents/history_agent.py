"""Fixture for the history tests: the toy agent plus EXTRA_CPU_MS milliseconds of CPU burnt per
step, measured with time.process_time, so other load on the host does not change how much CPU
an episode takes. A test copies this file to a path of its own, runs it, then rewrites
EXTRA_CPU_MS there: the same agent at the same path, now doing more work per step."""

import time

from agent_bench.agents.toy_agent import ToyAgent

EXTRA_CPU_MS = 0


class Agent(ToyAgent):
    def act(self):
        if EXTRA_CPU_MS:
            end = time.process_time() + EXTRA_CPU_MS / 1000
            while time.process_time() < end:
                pass
        return super().act()
