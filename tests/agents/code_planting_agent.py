"""Fixture: appends a line of code to every file named in HOSTILE_TARGETS (os.pathsep
between them): an agent file of the scenario, TraceCore's installed toy agent. Later episodes
load the changed code; the run must say so. Then raises."""

import os

from agent_bench.agents.toy_agent import ToyAgent

MARKER = "tracecore-perf-containment-fixture"


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        for path in filter(None, os.environ.get("HOSTILE_TARGETS", "").split(os.pathsep)):
            with open(path, "a") as fh:
                fh.write(f"\nPLANTED = {MARKER!r}  # appended by code_planting_agent\n")
            print(f"appended to {path}", flush=True)
        raise RuntimeError("code planter raised after changing installed code")
