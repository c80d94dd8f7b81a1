"""Fixture: holds 1 GiB outside the data segment's count: the pages of a memfd (shared
memory with no path, so no read-only mount stops it), mapped shared and touched. Then
behaves like the toy agent. Under a memory limit it must fail, naming the limit."""

import mmap
import os

from agent_bench.agents.toy_agent import ToyAgent

SIZE = 1024 * 1024 * 1024


class Agent(ToyAgent):
    held = None

    def act(self):
        if self.held is None:
            fd = os.memfd_create("tracecore-perf-containment-fixture")
            os.ftruncate(fd, SIZE)
            self.held = mmap.mmap(fd, SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            for offset in range(0, SIZE, 4096):
                self.held[offset] = 1
        return super().act()
