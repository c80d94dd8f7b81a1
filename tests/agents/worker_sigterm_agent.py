"""Fixture: sends SIGTERM to its own worker (the episode's parent process), then
raises. Only its own row may be lost; the harness replaces the worker."""

import os
import signal

from agent_bench.agents.toy_agent import ToyAgent


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        os.kill(os.getppid(), signal.SIGTERM)
        raise RuntimeError("worker terminator raised after sending SIGTERM to its worker")
