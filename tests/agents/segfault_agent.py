"""Fixture: dies by a segmentation fault, from act()."""

import ctypes  # noqa: F401
import os  # noqa: F401


class Agent:
    def reset(self, task_spec):
        pass

    def observe(self, observation):
        pass

    def act(self):
        ctypes.string_at(0)  # reads address 0, SIGSEGV
