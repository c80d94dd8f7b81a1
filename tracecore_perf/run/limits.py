"""The harness's own resource limits, put back when an episode lowers them.

Any process of the same user can lower another's limits with prlimit(2): an episode that
gives the harness 3 open files, or a file size limit of one byte, would end the run at the
next file the harness opens or the next row it writes. :class:`LimitGuard` records the
harness's limits when the run starts and, each time it is asked (after every episode, at
every monitor sample, before publishing), raises any that were lowered back to what they
were: a root harness gets them all back; another user's gets back every soft limit up to its
hard one (lowering a hard limit is one-way for it). What could not be restored is logged;
a file the harness then cannot open or write costs a missing sample, or stops the run with
its rows kept (exit 3), never a traceback.
"""

from __future__ import annotations

import contextlib
import os
import resource

import structlog

log = structlog.get_logger("tracecore_perf.run.limits")

# The limits whose lowering can end a process that does not expect it.
GUARDED = {
    "NOFILE": resource.RLIMIT_NOFILE,  # EMFILE on the next open, socket or pipe
    "FSIZE": resource.RLIMIT_FSIZE,  # EFBIG on the next write past it (SIGXFSZ is ignored by Python)
    "CPU": resource.RLIMIT_CPU,  # SIGXCPU, then SIGKILL
    "AS": resource.RLIMIT_AS,  # MemoryError
    "DATA": resource.RLIMIT_DATA,
    "STACK": resource.RLIMIT_STACK,
    "NPROC": resource.RLIMIT_NPROC,  # no new worker or zygote
}


def _infinite_first(value: int) -> int:
    return float("inf") if value == resource.RLIM_INFINITY else value  # type: ignore[return-value]


class LimitGuard:
    """The harness's limits at the start of the run, and :meth:`check` to put them back."""

    def __init__(self) -> None:
        self.original = {name: resource.getrlimit(kind) for name, kind in GUARDED.items()}
        self.restored = 0  # how many times a lowered limit was found and raised again
        self.stuck: list[str] = []  # limits still below the start's after trying: the run cannot go on
        self.freed_stdin = False

    def check(self) -> list[str]:
        """Raise every limit found lower than at the start back up (as far as allowed);
        returns the names of those that were lowered."""
        lowered = []
        for name, kind in GUARDED.items():
            try:
                now = resource.getrlimit(kind)
            except (OSError, ValueError):
                continue
            soft, hard = self.original[name]
            if _infinite_first(now[0]) >= _infinite_first(soft) and _infinite_first(now[1]) >= _infinite_first(hard):
                continue
            lowered.append(name)
            try:
                resource.setrlimit(kind, (soft, hard))  # a root harness, or one whose hard limit was left alone
            except (OSError, ValueError):
                with contextlib.suppress(OSError, ValueError):  # up to the (lowered) hard limit at least
                    resource.setrlimit(kind, (now[1] if _infinite_first(now[1]) < _infinite_first(soft) else soft, now[1]))
        if lowered:
            self.restored += 1
            now = self._now(lowered)
            self.stuck = [
                f"{name} {now[name][0]}/{now[name][1]}"
                for name in lowered
                if _infinite_first(now[name][0]) < _infinite_first(self.original[name][0])
            ]
            log.warning("harness.limits_lowered", limits=lowered, now=now, stuck=self.stuck)
            if "NOFILE" in lowered and now["NOFILE"][0] <= 3 and not self.freed_stdin:
                # No descriptor number below the limit is free: give up stdin (the harness never
                # reads it), so files can still be opened one at a time to stop the run cleanly.
                with contextlib.suppress(OSError):
                    os.close(0)
                self.freed_stdin = True
        return lowered

    def _now(self, names: list[str]) -> dict[str, tuple[int, int]]:
        return {name: resource.getrlimit(GUARDED[name]) for name in names}

    def restore(self) -> None:
        """At the end of a run: the limits as they were at its start."""
        self.check()
