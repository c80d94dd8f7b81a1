"""Fixture: the toy agent, but it answers wrongly whenever the hidden config file TraceCore
derived from the seed has an even number (``/app/.config_7310``), so it fails on about half
of the seeds, the same seeds every run. With SEED_FAILING_AGENT_OFF=1 in the environment it
is the plain toy agent (a healthy reference run of the same scenario)."""

import os

from agent_bench.agents.toy_agent import ToyAgent


def _unlucky(path: str) -> bool:
    digits = path.rsplit("_", 1)[-1]
    return digits.isdigit() and int(digits) % 2 == 0


class Agent(ToyAgent):
    def act(self):
        action = super().act()
        if action.get("type") == "set_output" and os.environ.get("SEED_FAILING_AGENT_OFF") != "1":
            files = (self.obs or {}).get("visible_state", {}).get("files_seen", [])
            if any(".config_" in f and _unlucky(f) for f in files):
                return {"type": "set_output", "args": {"key": "API_KEY", "value": "wrong_value"}}
        return action
