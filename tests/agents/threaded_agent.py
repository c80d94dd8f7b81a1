"""Fixture (healthy): does its first step's work in 16 threads at once, as an LLM agent issuing
concurrent HTTP calls would, each holding 1 MiB; then behaves like the toy agent. A few MiB in
use, but glibc reserves address space for each thread's stack and malloc arena: a memory limit
must bound what an episode uses, not what it reserves."""

import threading
from concurrent.futures import ThreadPoolExecutor

from agent_bench.agents.toy_agent import ToyAgent

THREADS = 16
_all_in_flight = threading.Barrier(THREADS)


def _work(_: int) -> int:
    pieces = [bytearray(65536) for _ in range(16)]
    _all_in_flight.wait(timeout=30)
    return sum(len(piece) for piece in pieces)


class Agent(ToyAgent):
    done = False

    def act(self):
        if not self.done:
            self.done = True
            with ThreadPoolExecutor(max_workers=THREADS) as pool:
                assert sum(pool.map(_work, range(THREADS))) == THREADS * 16 * 65536
        return super().act()
