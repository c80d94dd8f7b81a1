"""Fixture: the toy agent, recording an LLM call per step whose prompt grows with the number
of episodes the run has finished (TraceCore keeps the agent's ``llm_trace`` in the run
artifact), so artifact bytes per episode grow through the run."""

import os

from agent_bench.agents.toy_agent import ToyAgent

BYTES_PER_EPISODE_DONE = 400


class Agent(ToyAgent):
    done = None

    def act(self):
        if self.done is None:
            self.done = len(os.listdir(".agent_bench/runs")) if os.path.isdir(".agent_bench/runs") else 0
        action = super().act()
        prompt = "x" * (BYTES_PER_EPISODE_DONE * self.done)
        self.llm_trace = [{"request": {"prompt": prompt}, "response": {"completion": "ok", "tokens_used": 1}}]
        return action
