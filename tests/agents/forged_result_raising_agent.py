"""Fixture: writes a success-shaped episode result to every file descriptor >= 3 (the
result pipe among them), closes them all, then raises. The episode failed: the forged result
must not make its row a success."""

import json
import runpy
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

PAYLOAD = {"completed": True, "episode_s": 0.01, "success": True, "run_id": "forged"}

write_everywhere = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))["write_everywhere"]


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        write_everywhere(json.dumps(PAYLOAD).encode(), close=True)
        raise RuntimeError("result forger raised after forging its result")
