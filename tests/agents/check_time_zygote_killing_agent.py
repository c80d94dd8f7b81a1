"""Fixture: TraceCore's toy agent whose module, when the harness loads it to check it, kills the
run's zygote (a sibling of the check: another child of the harness), just before the run
directory is made."""

import os
import signal
import time

from agent_bench.agents.toy_agent import ToyAgent as Agent  # noqa: F401 - the agent class

with open("/proc/self/cmdline", "rb") as _fh:
    _checking = b"check-agent" in _fh.read().split(b"\0")  # not in an episode (its own argv is the zygote's)
# The harness checks agent files a few at a time: where the test runs check_time_planting_agent
# beside this one, let it find the zygote before this kills it (the test asserts both attacks
# were made), for at most a minute
_flag = os.environ.get("HOSTILE_PLANTED_FLAG")
for _ in range(600) if _checking and _flag else ():
    if os.path.exists(_flag):
        break
    time.sleep(0.1)
for _pid in filter(str.isdigit, os.listdir("/proc")) if _checking else ():
    try:
        with open(f"/proc/{_pid}/cmdline", "rb") as _fh:
            _argv = _fh.read().split(b"\0")
        with open(f"/proc/{_pid}/stat") as _fh:
            _ppid = int(_fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError):
        continue
    if b"zygote" in _argv and _ppid == os.getppid():
        os.kill(int(_pid), signal.SIGKILL)
