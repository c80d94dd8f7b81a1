"""Fixture: dies by abort(), from act()."""

import ctypes  # noqa: F401
import os  # noqa: F401


class Agent:
    def reset(self, task_spec):
        pass

    def observe(self, observation):
        pass

    def act(self):
        os.abort()  # SIGABRT
