"""Fixture: ignores SIGTERM, then hangs."""

import signal
import time


class Agent:
    def reset(self, task_spec):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def observe(self, observation):
        pass

    def act(self):
        while True:
            time.sleep(3600)
