"""Fixture: builds a chain of directories 3,000 deep in its scratch directory (deeper than
Python 3.11's recursive ``shutil.rmtree`` can remove), then raises."""

import os

from agent_bench.agents.toy_agent import ToyAgent


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        fd = os.open(".", os.O_RDONLY)
        for _ in range(3000):
            os.mkdir("d", dir_fd=fd)
            deeper = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = deeper
        os.close(fd)
        raise RuntimeError("deep tree builder raised")
