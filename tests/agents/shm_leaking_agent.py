"""Fixture: the toy agent, but every episode leaves 128 MB in a file under /dev/shm (tmpfs, so
it is the host's memory) that nobody removes: system memory grows without bound through the
run, ~5.4 GB over the test's 40 episodes, far beyond what other processes on the host move it by
(the check needs 256 MiB after its warm-up, and a steady rise: with 64 MB an episode, a second
test suite on the same host, opening Chromium, once hid the rise). The test removes the files
(their names carry LEAK_PREFIX)."""

import os
import uuid

from agent_bench.agents.toy_agent import ToyAgent

LEAK_PREFIX = "tracecore-perf-fixture-leak-"
LEAK_BYTES = 128 * 1024 * 1024


class Agent(ToyAgent):
    leaked = False

    def act(self):
        if not self.leaked:
            self.leaked = True
            tag = os.environ.get("LEAK_TAG", "")  # the test's own, so concurrent test runs never meet
            with open(f"/dev/shm/{LEAK_PREFIX}{tag}-{uuid.uuid4().hex}", "wb") as fh:
                fh.write(os.urandom(1024) * (LEAK_BYTES // 1024))
        return super().act()
