"""Fixture: closes its stdin, stdout and stderr and dup2s garbage over them (the write
end of a pipe nobody reads, /dev/full, a directory), prints into them, then raises."""

import contextlib
import os

from agent_bench.agents.toy_agent import ToyAgent


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        _, unread = os.pipe()
        full = os.open("/dev/full", os.O_WRONLY)
        directory = os.open("/", os.O_RDONLY)
        for fd in (0, 1, 2):
            os.close(fd)
        os.dup2(unread, 0)
        os.dup2(full, 1)
        os.dup2(directory, 2)
        with contextlib.suppress(OSError):  # /dev/full refuses it; the agent carries on
            print("garbage on a full stdout", flush=True)
        raise RuntimeError("fd garbage agent raised with fds 0-2 replaced by garbage")
