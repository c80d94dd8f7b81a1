"""Fixture: writes valid JSON of the wrong shape ({"completed": true, "episode_s": "x"})
to every file descriptor >= 3, then exits 0 at once: a result of the wrong shape."""

import json
import os
import runpy
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

PAYLOAD = {"completed": True, "episode_s": "x"}

write_everywhere = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))["write_everywhere"]


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        write_everywhere(json.dumps(PAYLOAD).encode())
        os._exit(0)
