"""Fixture: dies by a segmentation fault, from act()."""

import ctypes  # noqa: F401
import os  # noqa: F401

from agent_bench.agents.toy_agent import ToyAgent


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        ctypes.string_at(0)  # reads address 0, SIGSEGV
