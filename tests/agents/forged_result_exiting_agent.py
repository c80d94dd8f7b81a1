"""Fixture (issue 9): writes a success-shaped episode result to every file descriptor >= 3 (the
result pipe among them), closes them all, then exits 0 at once. No TraceCore artifact exists
for the claimed run_id: the row must not be a success."""

import contextlib
import json
import os
import resource

from agent_bench.agents.toy_agent import ToyAgent

PAYLOAD = {"completed": True, "episode_s": 0.01, "success": True, "run_id": "forged"}


def _open_fds() -> list[int]:
    """Every descriptor from 3 up to the soft RLIMIT_NOFILE (the open ones, when /proc says)."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    try:
        found = sorted(int(name) for name in os.listdir("/proc/self/fd"))
    except OSError:
        found = range(3, limit)
    return [fd for fd in found if 3 <= fd < limit]


def _write_everywhere(data: bytes, close: bool) -> None:
    for fd in _open_fds():
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            pass
        if close:
            with contextlib.suppress(OSError):
                os.close(fd)


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        _write_everywhere(json.dumps(PAYLOAD).encode(), close=True)
        os._exit(0)
