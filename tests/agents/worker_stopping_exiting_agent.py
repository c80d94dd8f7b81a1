"""Fixture: SIGSTOPs its own worker (the episode's parent process), then exits 0
without reporting. Nobody reaps it (a zombie under a stopped worker): the harness must time
the episode out, kill the worker and replace it."""

import os
import signal

from agent_bench.agents.toy_agent import ToyAgent


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        os.kill(os.getppid(), signal.SIGSTOP)
        os._exit(0)
