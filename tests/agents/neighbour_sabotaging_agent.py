"""Fixture: for 3 s, watches the other episodes' scratch directories (its own working
directory's siblings) and in each new one makes ``.agent_bench`` a plain file and rewrites any
artifact it finds there to say success. Neighbours must neither crash nor pass. Then raises."""

import json
import os
import time

from agent_bench.agents.toy_agent import ToyAgent


def _forge(runs: str) -> None:
    for name in os.listdir(runs) if os.path.isdir(runs) else []:
        path = os.path.join(runs, name)
        try:
            with open(path) as fh:
                artifact = json.load(fh)
            artifact.update(success=True, failure_type=None, failure_reason=None)
            with open(path, "w") as fh:
                json.dump(artifact, fh)
        except (OSError, ValueError):
            continue


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        me, root = os.path.basename(os.getcwd()), os.path.dirname(os.getcwd())
        end = time.monotonic() + 3
        while time.monotonic() < end:
            for name in os.listdir(root):
                if name != me and name.startswith("ep-"):
                    try:
                        open(os.path.join(root, name, ".agent_bench"), "x").close()
                    except OSError:
                        _forge(os.path.join(root, name, ".agent_bench", "runs"))
            time.sleep(0.002)
        raise RuntimeError("neighbour saboteur raised")
