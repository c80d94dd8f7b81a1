"""Processes nobody owns any more, found by the run's mark, not by who adopted them.

Workers and the zygote are child subreapers, so what an episode leaves running is re-parented
to them and killed. Workers die with their zygote, so if an episode kills its zygote, what it
left is re-parented past them. The harness is deliberately *not* a subreaper: a process it
adopted would have the harness as its parent, one ``kill(getppid())`` away ("kill my
grandparent" took the harness down that way). Such a process is re-parented to init (or to
whatever subreaper runs the harness) instead, and found here by its mark: every zygote the
harness starts carries ``TRACECORE_PERF_RUN=<token>`` in its environment (``spawn.TOKEN_ENV``
and ``spawn.RUN_TOKEN``, set by ``spawn.spawn_zygote``),
and every process forked below it inherits it. :func:`sweep` SIGKILLs every process whose
environment carries this harness's token: once the workers are closed (before the evidence
is checked, so nothing of an episode's is left running to change it afterwards) and again
when the zygote is closed.

What the mark cannot hold: a process that ``exec``s itself with an environment of its own
*and* outlives both its worker and its zygote. ``--sandbox`` holds that one (its PID
namespace dies with the episode). Linux only; elsewhere a no-op.
"""

from __future__ import annotations

import contextlib
import os
import signal

from tracecore_perf.run.spawn import RUN_TOKEN, TOKEN_ENV

_MARK = f"{TOKEN_ENV}={RUN_TOKEN}".encode()
PASSES = 20  # killing one may leave a child that was forked a moment before: look again


def marked(keep: frozenset[int] = frozenset()) -> list[int]:
    """Live processes carrying this harness's mark, but ``keep`` and the harness itself."""
    found = []
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return found
    for pid in pids:
        if pid == os.getpid() or pid in keep:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                environ = fh.read()
        except OSError:  # gone, or not ours to read
            continue
        if _MARK in environ.split(b"\0"):
            found.append(pid)
    return found


def sweep(keep: frozenset[int] = frozenset()) -> int:
    """SIGKILL every process of the run but ``keep`` (the zygote, while it still has work),
    reaping those that are our own children. Returns how many there were."""
    total = 0
    for _ in range(PASSES):
        strays = marked(keep)
        if not strays:
            break
        for pid in strays:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for pid in strays:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, 0)  # only a zygote is our child; SIGKILL cannot be ignored
        total += len(strays)
    return total
