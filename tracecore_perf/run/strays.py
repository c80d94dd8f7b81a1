"""Processes nobody owns any more: the harness as the last child subreaper of its run.

Workers and the zygote are child subreapers, so what an episode leaves running is re-parented
to them and killed. If an episode kills its zygote (and its worker dies later), what it left
would be re-parented to init and outlive the run. With the harness a subreaper too, it lands
here instead, and :func:`sweep` kills and reaps it: once the workers are closed (before the
evidence is checked, so nothing of an episode's is left running to change it afterwards) and
again when the zygote is closed. Linux only; elsewhere a no-op.
"""

from __future__ import annotations

import contextlib
import os
import signal

from tracecore_perf.run.episode_worker import PR_SET_CHILD_SUBREAPER, prctl


def become_subreaper() -> None:
    with contextlib.suppress(OSError, AttributeError):
        prctl(PR_SET_CHILD_SUBREAPER, 1)


def children() -> set[int]:
    """Every child of this process, whichever of its threads it hangs under."""
    found: set[int] = set()
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return found
    for tid in tasks:
        with contextlib.suppress(OSError, ValueError), open(f"/proc/self/task/{tid}/children") as fh:
            found.update(int(pid) for pid in fh.read().split())
    return found


def sweep(keep: frozenset[int] = frozenset()) -> int:
    """SIGKILL and reap every child but ``keep`` (the zygote, while it still has work),
    again and again, since killing one re-parents its own children here. Returns how many
    there were."""
    total = 0
    while strays := children() - keep:
        for pid in strays:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in strays:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, 0)  # SIGKILL cannot be ignored: this returns at once
        total += len(strays)
    return total
