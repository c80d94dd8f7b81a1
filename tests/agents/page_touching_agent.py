"""Fixture: the toy agent, which in its first act() also has the kernel fill in fresh pages of
memory (``MAP_POPULATE``: the number of pages in a ``pages`` file beside this file, 0 without
one). Each page is a minor page fault and kernel time, and next to no instruction of the
episode's own: work moved into the kernel, which an instruction count does not see. Copy it
into two folders with different ``pages`` to plant a change in the kernel's work alone."""

import mmap
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

HERE = Path(__file__).resolve().parent


class Agent(ToyAgent):
    touched = False

    def act(self):
        if not self.touched:
            self.touched = True
            setting = HERE / "pages"
            pages = int(setting.read_text()) if setting.exists() else 0
            flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | (mmap.MAP_POPULATE if pages else 0)
            mmap.mmap(-1, max(pages, 1) * mmap.PAGESIZE, flags=flags).close()
        return super().act()
