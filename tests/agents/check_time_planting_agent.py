"""Fixture: TraceCore's toy agent whose module, when the harness loads it to check it (under
--instructions, before any episode), plants links to /dev/null at the count-file names of the
next few thousand pids in the run's callgrind folder, found from the command line of the run's
zygote (a sibling of the check: another child of the harness; not another run's, on a host
running several): so that every episode of the run, honest ones included, would lose its
count. It starts and kills nothing."""

import contextlib
import os

from agent_bench.agents.toy_agent import ToyAgent as Agent  # noqa: F401 - the agent class

for _pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{_pid}/cmdline", "rb") as _fh:
            _argv = _fh.read().split(b"\0")
        with open(f"/proc/{_pid}/stat") as _fh:
            _ppid = int(_fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError):
        continue
    _out = [w for w in _argv if w.startswith(b"--callgrind-out-file=")]
    if b"zygote" in _argv and _out and _ppid == os.getppid():
        _folder = os.path.dirname(_out[0].split(b"=", 1)[1].decode())
        with open("/proc/sys/kernel/ns_last_pid") as _fh:
            _last = int(_fh.read())
        _planted = 0
        for _n in range(_last + 1, _last + 3000):
            with contextlib.suppress(OSError):
                os.symlink("/dev/null", os.path.join(_folder, f"callgrind.out.{_n}"))
                _planted += 1
        if _planted and os.environ.get("HOSTILE_PLANTED_FLAG"):  # the test knows the attack was made
            open(os.environ["HOSTILE_PLANTED_FLAG"], "w").close()
