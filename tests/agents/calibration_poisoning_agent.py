"""Fixture: TraceCore's toy agent doing more work than the toy, then CALLGRIND_ZERO_STATS before
its final answer (through valgrind_request_agent's client request). Its first episode also tries
to switch the CPU-time check off for the rest of the run: it plants links to /dev/null at the
count-file names of the next few hundred pids (the next zygote's calibration child among them)
and kills its zygote, so that a new one calibrates against a lost count."""

import contextlib
import importlib.util
import os
import signal

from agent_bench.agents.toy_agent import ToyAgent

_spec = importlib.util.spec_from_file_location("_requests", os.path.join(os.path.dirname(__file__), "valgrind_request_agent.py"))
_requests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_requests)
FLAG = os.environ.get("HOSTILE_FLAG", "")


def count_folder() -> str | None:
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as fh:
            words = fh.read().decode(errors="replace").split("\0")
    except OSError:
        return None
    return next((os.path.dirname(w.split("=", 1)[1]) for w in words if w.startswith("--callgrind-out-file=")), None)


def poison() -> None:
    folder = count_folder()
    if not folder or not FLAG or os.path.exists(FLAG):
        return
    open(FLAG, "w").close()
    with open("/proc/sys/kernel/ns_last_pid") as fh:
        last = int(fh.read())
    for pid in range(last + 1, last + 400):
        with contextlib.suppress(OSError):
            os.symlink("/dev/null", os.path.join(folder, f"callgrind.out.{pid}"))
    with open(f"/proc/{os.getppid()}/stat") as fh:
        zygote = int(fh.read().rsplit(")", 1)[1].split()[1])  # the worker's parent
    os.kill(zygote, signal.SIGKILL)


class Agent(ToyAgent):
    started = False

    def act(self):
        if not self.started:
            self.started = True
            poison()
            total = 0
            for i in range(400_000):  # more work than the toy's whole episode
                total += i % 7
        action = super().act()
        if action.get("type") == "set_output":
            _requests.client_request(_requests.REQUESTS["zero_stats"])
        return action
