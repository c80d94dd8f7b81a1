"""Fixture: an agent file whose import waits at a gate. Loading it (the harness's validation
probe loads every agent file before any episode) writes ``import-started-<pid>`` next to this
file, then waits until ``gate-open`` exists there (for as long as that takes: no time cut a
loaded host could reach; the test opens the gate), so a test can signal the harness while it
is surely still validating. Copy the file into the test's own folder: the gate is per copy."""

import os
import time
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

HERE = Path(__file__).resolve().parent
(HERE / f"import-started-{os.getpid()}").write_text(str(os.getpid()))
while not (HERE / "gate-open").exists() and HERE.is_dir():
    time.sleep(0.05)


class Agent(ToyAgent):
    pass
