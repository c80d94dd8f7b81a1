"""Fixture: the toy agent plus a fixed amount of CPU work per step (a deterministic hash
chain), set by the environment variable BUSY_AGENT_ROUNDS (default 20000). Two runs with
rounds R and 1.2 R are twins, one doing 20% more work per step."""

import hashlib
import os

from agent_bench.agents.toy_agent import ToyAgent

ROUNDS = int(os.environ.get("BUSY_AGENT_ROUNDS", "20000"))


class Agent(ToyAgent):
    def act(self):
        digest = b"tracecore"
        for _ in range(ROUNDS):
            digest = hashlib.sha256(digest).digest()
        return super().act()
