"""Fixture: the toy agent, recording an LLM call per step whose prompt grows with the number
of episodes started before it (from the test's FIXTURE_CLOCK folder; TraceCore keeps the
agent's ``llm_trace`` in the run artifact), so artifact bytes per episode grow through the run."""

import os
import tempfile

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
