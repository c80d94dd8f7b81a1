"""Fixture: TraceCore's toy agent, plus work, that before its final answer writes a forged
``summary:`` line into callgrind's own memory (Valgrind shares the episode's address space):
into the command line callgrind keeps for its count file's ``cmd:`` header line, through
/proc/self/mem, so the file it writes at the episode's exit carries the forged count above
its real one."""

import os
import re

from agent_bench.agents.toy_agent import ToyAgent

FORGED = 31_337_000
COMMAND = re.compile(rb"episode_process\.py zygote forkserver \d+")


def forge() -> int:
    done = 0
    mem = os.open("/proc/self/mem", os.O_RDWR)
    try:
        with open("/proc/self/maps") as fh:
            maps = fh.read().splitlines()
        for line in maps:
            low, high = (int(x, 16) for x in line.split()[0].split("-"))
            if not 0x1000000000 <= low < 0x1100000000:  # Valgrind's own heap
                continue
            try:
                data = os.pread(mem, min(high - low, 1 << 16), low)
            except OSError:
                continue
            for match in COMMAND.finditer(data):
                new = b"x\nsummary: %d\n" % FORGED
                os.pwrite(mem, new + b" " * (len(match.group(0)) - len(new)), low + match.start())
                done += 1
            if done:
                break
    finally:
        os.close(mem)
    return done


class Agent(ToyAgent):
    started = False

    def act(self):
        if not self.started:
            self.started = True
            total = 0
            for i in range(30_000):
                total += i % 7
        action = super().act()
        if action.get("type") == "set_output":
            forge()
        return action
