"""Fixture: an agent file whose import waits at a gate. Loading it (the harness's validation
probe loads every agent file before any episode) writes ``import-started-<pid>`` next to this
file, then waits until ``gate-open`` exists there (at most 120 s), so a test can signal the
harness while it is surely still validating. Copy the file into the test's own folder: the
gate is per copy."""

import os
import time
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

HERE = Path(__file__).resolve().parent
(HERE / f"import-started-{os.getpid()}").write_text(str(os.getpid()))
_deadline = time.monotonic() + 120.0
while not (HERE / "gate-open").exists() and time.monotonic() < _deadline:
    time.sleep(0.05)


class Agent(ToyAgent):
    pass
