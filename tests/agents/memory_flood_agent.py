"""Fixture: allocates and touches memory 64 MiB at a time up to 3 GiB (keeping all of it),
then behaves like the toy agent. Under a memory limit it must fail, naming the limit; the run
goes on."""

from agent_bench.agents.toy_agent import ToyAgent

CHUNK = 64 * 1024 * 1024
TOTAL = 3 * 1024 * 1024 * 1024


class Agent(ToyAgent):
    held = None

    def act(self):
        if self.held is None:
            self.held = []
            while len(self.held) * CHUNK < TOTAL:
                chunk = bytearray(CHUNK)  # zero-filled by the kernel: touch a byte per page
                for i in range(0, CHUNK, 4096):
                    chunk[i] = 1
                self.held.append(chunk)
        return super().act()
