"""Fixture: ignores SIGTERM, then hangs."""

import signal
import time

from agent_bench.agents.toy_agent import ToyAgent


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def reset(self, task_spec):
        super().reset(task_spec)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def act(self):
        while True:
            time.sleep(3600)
