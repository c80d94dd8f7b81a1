"""Fixture: the toy agent, held at a gate. Its first act() writes ``gate-started-<pid>`` next
to this file, then waits until ``gate-open`` exists there (for as long as that takes: no time
cut a loaded host could reach; the test opens the gate in a ``finally``), so a test can act
while the episode is surely running (kill its node, say) and release it when it is done.
Copy the file into the test's own folder: the gate is per copy."""

import os
import time
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

HERE = Path(__file__).resolve().parent


class Agent(ToyAgent):
    waited = False

    def act(self):
        if not self.waited:
            self.waited = True
            # written whole, then renamed: a test that sees the name reads the pid, never ""
            part = HERE / f".gate-starting-{os.getpid()}"
            part.write_text(str(os.getpid()))
            os.replace(part, HERE / f"gate-started-{os.getpid()}")
            while not (HERE / "gate-open").exists() and HERE.is_dir():
                time.sleep(0.05)
        return super().act()
