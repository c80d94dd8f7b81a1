"""Fixture: writes 10 MB to stdout and 10 MB to stderr, then behaves like the toy agent."""

import os
import sys

from agent_bench.agents.toy_agent import ToyAgent

CHUNK = "x" * 1023 + "\n"


class Agent(ToyAgent):
    flooded = False

    def act(self):
        if not self.flooded:
            self.flooded = True
            for _ in range(10 * 1024):
                sys.stdout.write(CHUNK)
                sys.stderr.write(CHUNK)
            sys.stdout.flush()
            os.write(1, b"\n")
        return super().act()
