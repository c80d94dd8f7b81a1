"""Fixture: the toy agent, recording an LLM call per step whose prompt grows with the number
of episodes started before it (from the test's FIXTURE_CLOCK folder; TraceCore keeps the
agent's ``llm_trace`` in the run artifact), so artifact bytes per episode grow through the run."""

import runpy
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

episodes_before = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))["episodes_before"]

BYTES_PER_EPISODE_DONE = 400


class Agent(ToyAgent):
    done = None

    def act(self):
        if self.done is None:
            self.done = episodes_before()
        action = super().act()
        prompt = "x" * (BYTES_PER_EPISODE_DONE * self.done)
        self.llm_trace = [{"request": {"prompt": prompt}, "response": {"completion": "ok", "tokens_used": 1}}]
        return action
