"""Fixture: reports, on its result pipe (fd 3), a finished, successful run whose artifact is
half a megabyte of JSON that TraceCore's ``persist_run`` format (``indent=2``) would write as
~200 MB: 250,000 zeros inside 400 nested lists, each zero on its own line behind 800 spaces.
The worker must neither make those bytes (a 60 MB report of the same shape would be 24 GB) nor
place them; it is this episode's bad artifact, never the run's evidence."""

import json
import os

from agent_bench.agents.toy_agent import ToyAgent

DEPTH, ZEROS = 400, 250_000


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        bomb = "[" * DEPTH + ",".join(["0"] * ZEROS) + "]" * DEPTH
        artifact = '{"run_id": "bomb1", "success": true, "x": ' + bomb + "}"
        head = json.dumps({"completed": True, "episode_s": 0.1, "run_id": "bomb1"})[:-1]
        os.write(3, (head + ', "artifact": ' + artifact + "}").encode())
        os._exit(0)
