"""Fixture: the toy agent, but every episode leaves 64 MB in a file under /dev/shm (tmpfs, so
it is the host's memory) that nobody removes: system memory grows without bound through the
run, ~2.6 GB over the test's 40 episodes, far beyond what other processes on the host move it by
(the check needs 256 MiB after its warm-up). The test removes the files (their names carry
LEAK_PREFIX)."""

import os
import uuid

from agent_bench.agents.toy_agent import ToyAgent

LEAK_PREFIX = "tracecore-perf-fixture-leak-"
LEAK_BYTES = 64 * 1024 * 1024


class Agent(ToyAgent):
    leaked = False

    def act(self):
        if not self.leaked:
            self.leaked = True
            tag = os.environ.get("LEAK_TAG", "")  # the test's own, so concurrent test runs never meet
            with open(f"/dev/shm/{LEAK_PREFIX}{tag}-{uuid.uuid4().hex}", "wb") as fh:
                fh.write(os.urandom(1024) * (LEAK_BYTES // 1024))
        return super().act()
