"""Fixture (issue 9): SIGKILLs the zygote (its worker's parent), then raises. Every worker
of the run loses its parent; episodes in flight on other workers must not lose their rows,
and the run must go on (a new zygote) and publish."""

import os
import signal

from agent_bench.agents.toy_agent import ToyAgent


def _parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:  # "pid (comm) state ppid ...": comm may hold spaces
        return int(fh.read().rsplit(")", 1)[1].split()[1])


def _cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        return fh.read().replace(b"\0", b" ").decode(errors="replace")


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        zygote = _parent_of(os.getppid())
        if zygote > 1 and "pytest" not in _cmdline(zygote):  # never the test runner itself
            print(f"killing zygote {zygote}: {_cmdline(zygote)}", flush=True)
            os.kill(zygote, signal.SIGKILL)
        raise RuntimeError("zygote killer raised after killing the zygote")
