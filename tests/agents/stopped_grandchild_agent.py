"""Fixture: starts a grandchild in a new session (out of the episode's process
group) that SIGSTOPs itself, waits until it is stopped, then raises. The stopped grandchild
must not be left behind. Its command line carries MARKER, the test's HOSTILE_MARKER and the
episode's working directory, so a leftover is found."""

import os
import subprocess
import sys
import time

from agent_bench.agents.toy_agent import ToyAgent

MARKER = "tracecore-perf-containment-fixture"


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "?"


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        child = subprocess.Popen(
            [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSTOP)",
             MARKER, os.environ.get("HOSTILE_MARKER", ""), os.getcwd()],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        # until the child has stopped itself (or died): the episode's timeout bounds the wait
        while _state(child.pid) not in ("T", "t") and child.poll() is None:
            time.sleep(0.01)
        raise RuntimeError(f"stopped grandchild agent raised, grandchild {child.pid} in state {_state(child.pid)}")
