"""Fixture: touches 500 MB of memory, then behaves like the toy agent."""

from agent_bench.agents.toy_agent import ToyAgent

SIZE = 500 * 1024 * 1024


class Agent(ToyAgent):
    hog = None

    def act(self):
        if self.hog is None:
            self.hog = bytearray(SIZE)
            for i in range(0, SIZE, 4096):  # touch every page so it is resident
                self.hog[i] = 1
        return super().act()
