"""Fixture: never returns from act()."""

import time

from agent_bench.agents.toy_agent import ToyAgent


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        while True:
            time.sleep(3600)
