"""Fixture: reports, on its result pipe (fd 3), a finished run whose artifact is JSON nested
30,000 deep (deeper than a recursive parser goes), then exits 0. It is this episode's bad
result, never its worker's death."""

import json
import os

from agent_bench.agents.toy_agent import ToyAgent


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        head = json.dumps({"completed": True, "episode_s": 0.1, "run_id": "deep1"})[:-1]
        os.write(3, (head + ', "artifact": {"run_id": "deep1", "x": ' + "[" * 30000 + "]" * 30000 + "}}").encode())
        os._exit(0)
