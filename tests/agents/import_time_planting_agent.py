"""Fixture: the first time its module is imported (the harness loading it to check it, before
any episode), appends a line of code to every file named in HOSTILE_TARGETS (os.pathsep
between them), leaving HOSTILE_FLAG behind so that no later import does it again; then runs
as TraceCore's toy agent. The change predates every episode: the run must still see it."""

import os

from agent_bench.agents.toy_agent import ToyAgent

MARKER = "tracecore-perf-containment-fixture"
_flag = os.environ.get("HOSTILE_FLAG")
if _flag and not os.path.exists(_flag):
    open(_flag, "w").close()
    for _path in filter(None, os.environ.get("HOSTILE_TARGETS", "").split(os.pathsep)):
        with open(_path, "a") as _fh:
            _fh.write(f"\nPLANTED = {MARKER!r}  # appended by import_time_planting_agent\n")


class Agent(ToyAgent):  # TraceCore's toy agent, untouched
    pass
