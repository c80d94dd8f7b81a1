"""Fixture: raises from act() on the first step."""


class Agent:
    def reset(self, task_spec):
        pass

    def observe(self, observation):
        pass

    def act(self):
        raise RuntimeError("fixture agent exploded on purpose")
