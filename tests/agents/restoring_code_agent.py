"""Fixture: appends a line of code to the file named in HOSTILE_TARGETS, then puts the file
back as it was, bytes and modification time: a change undone before anyone looks. Then
raises."""

import os

from agent_bench.agents.toy_agent import ToyAgent


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        path = os.environ["HOSTILE_TARGETS"]
        with open(path, "rb") as fh:
            before, times = fh.read(), os.stat(path)
        with open(path, "ab") as fh:
            fh.write(b"\nPLANTED = 'tracecore-perf-containment-fixture'\n")
        with open(path, "wb") as fh:
            fh.write(before)
        os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))
        raise RuntimeError("restoring code agent raised after changing and restoring code")
