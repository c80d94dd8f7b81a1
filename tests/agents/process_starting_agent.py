"""Fixture: TraceCore's toy agent that does the costly part of its work in a process of its
own, where callgrind would count it apart from the episode: a forked child that spins, then
an exec'd one. An error starting either is left to fail the episode (so a row that hid its
work cannot pass for a success)."""

import os
import subprocess
import sys

from agent_bench.agents.toy_agent import ToyAgent


class Agent(ToyAgent):
    started = False

    def act(self):
        if not self.started:
            self.started = True
            pid = os.fork()
            if pid == 0:
                total = sum(i * i for i in range(2_000_000))  # the hidden work
                os._exit(0 if total else 1)
            os.waitpid(pid, 0)
            subprocess.run([sys.executable, "-c", "sum(i * i for i in range(2_000_000))"], check=True)
        return super().act()
