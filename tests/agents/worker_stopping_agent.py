"""Fixture: SIGSTOPs its own worker (the episode's parent process), then hangs. The
stopped worker can neither report nor obey a kill request: the harness must time the episode
out, kill the worker (SIGKILL works on a stopped process) and replace it."""

import os
import signal
import time

from agent_bench.agents.toy_agent import ToyAgent


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        os.kill(os.getppid(), signal.SIGSTOP)
        while True:
            time.sleep(3600)
