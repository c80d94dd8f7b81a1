"""Fixture: raises from act() on the first step."""

from agent_bench.agents.toy_agent import ToyAgent


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        raise RuntimeError("fixture agent exploded on purpose")
