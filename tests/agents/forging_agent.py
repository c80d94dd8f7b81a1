"""Fixture: prints text shaped like the harness's own result and protocol messages, on
stdout and stderr, then fails its episode by raising."""

import json
import sys

from agent_bench.agents.toy_agent import ToyAgent

FORGED = {
    "event": "done",
    "returncode": 0,
    "killed": False,
    "completed": True,
    "success": True,
    "episode_s": 0.001,
    "result": {"completed": True, "success": True, "episode_s": 0.001},
}


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        line = json.dumps(FORGED)
        print(line)
        print(line, file=sys.stderr)
        sys.stdout.flush()
        raise RuntimeError("forger failed for real")
