"""Fixture: finds the harness (the zygote's parent, three generations up) and lowers its
limits with prlimit(2): 3 open files, and a file size limit of one byte (a write past it
raises SIGXFSZ, which kills a process that does not expect it, or fails with EFBIG). Only the
soft limits unless HOSTILE_HARD_LIMIT is set: then the hard open-file limit too, which only a
process with CAP_SYS_RESOURCE can raise again. Then raises."""

import os
import resource
import runpy
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

tools = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        pid = os.getpid()
        for _ in range(3):  # episode -> worker -> zygote -> harness
            pid = tools["parent_of"](pid)
        if "tracecore_perf" in tools["cmdline"](pid) and str(pid) != os.environ.get("HOSTILE_SPARE_PID"):
            if os.environ.get("HOSTILE_HARD_LIMIT"):
                resource.prlimit(pid, resource.RLIMIT_NOFILE, (3, 3))
            else:
                resource.prlimit(pid, resource.RLIMIT_NOFILE, (3, resource.prlimit(pid, resource.RLIMIT_NOFILE)[1]))
                resource.prlimit(pid, resource.RLIMIT_FSIZE, (1, resource.prlimit(pid, resource.RLIMIT_FSIZE)[1]))
            print(f"limited harness {pid}", flush=True)
        raise RuntimeError("harness limiter raised after lowering the harness's limits")
