"""Fixture (issue 9): writes valid JSON of the wrong shape (a list) to every file descriptor >= 3,
then exits 0 at once: a result of the wrong shape."""

import json
import os
import resource

from agent_bench.agents.toy_agent import ToyAgent

PAYLOAD = [1, 2, 3]


def _open_fds() -> list[int]:
    """Every descriptor from 3 up to the soft RLIMIT_NOFILE (the open ones, when /proc says)."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    try:
        found = sorted(int(name) for name in os.listdir("/proc/self/fd"))
    except OSError:
        found = range(3, limit)
    return [fd for fd in found if 3 <= fd < limit]


def _write_everywhere(data: bytes) -> None:
    for fd in _open_fds():
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            pass


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        _write_everywhere(json.dumps(PAYLOAD).encode())
        os._exit(0)
