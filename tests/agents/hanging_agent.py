"""Fixture: never returns from act()."""

import time


class Agent:
    def reset(self, task_spec):
        pass

    def observe(self, observation):
        pass

    def act(self):
        while True:
            time.sleep(3600)
