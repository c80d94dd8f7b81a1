"""Fixture: tries, from inside its episode, every way out a sandbox must close, and reports
what worked in the error it raises (``probe: {json}``): writing its own scratch directory
(the one place that must stay writable), writing and reading its run's directory, opening
TraceCore's installed files for writing, writing into the test's folder outside the run
(HOSTILE_VICTIM's folder), seeing or making sibling scratch directories, seeing the harness among the
processes, connecting to a TCP port the test listens on (HOSTILE_PORT), opening the kernel log
for writing, and seeing a System V shared memory segment the test made (HOSTILE_SHM_KEY)."""

import ctypes
import glob
import json
import os
import runpy
import socket
from pathlib import Path

import agent_bench
from agent_bench.agents.toy_agent import ToyAgent

tools = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))


def _try(action) -> bool:
    try:
        action()
        return True
    except OSError:
        return False


def _write(path: str) -> None:
    with open(path, "w") as fh:
        fh.write("tracecore-perf-containment-fixture\n")


def _harness_visible() -> bool:
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if " -m tracecore_perf " in tools["cmdline"](int(name)) + " ":
                    return True
            except OSError:
                continue
    return False


def _host_segment_visible() -> bool:
    """Whether the System V shared memory segment the test made (key HOSTILE_SHM_KEY) is here."""
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.shmget(int(os.environ["HOSTILE_SHM_KEY"]), 0, 0) >= 0


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() reports and raises
    def act(self):
        run_dir = (glob.glob(os.environ["HOSTILE_RUN_GLOB"]) or ["/nonexistent-run"])[0]
        installed = os.path.join(os.path.dirname(agent_bench.__file__), "agents", "toy_agent.py")
        victim_dir = os.path.dirname(os.environ["HOSTILE_VICTIM"])
        found = {
            "own_scratch_writable": _try(lambda: _write("scratch-probe.txt")),
            "run_dir_writable": _try(lambda: _write(os.path.join(run_dir, "planted-by-fixture.txt"))),
            "run_dir_readable": _try(lambda: os.listdir(run_dir)),
            "tracecore_writable": _try(lambda: os.close(os.open(installed, os.O_WRONLY | os.O_APPEND))),
            "outside_writable": _try(lambda: _write(os.path.join(victim_dir, "planted-by-fixture.txt"))),
            "scratch_root_writable": _try(lambda: os.mkdir(os.path.join(os.path.dirname(os.getcwd()), "planted-sibling"))),
            "scratch_root_entries": len(os.listdir(os.path.dirname(os.getcwd()))),
            "harness_visible": _harness_visible(),
            "network": _try(lambda: socket.create_connection(("127.0.0.1", int(os.environ["HOSTILE_PORT"])), 2).close()),
            "kernel_log_writable": _try(lambda: os.close(os.open("/dev/kmsg", os.O_WRONLY))),
            "host_shared_memory_visible": _host_segment_visible(),
        }
        raise RuntimeError("probe: " + json.dumps(found, sort_keys=True))
