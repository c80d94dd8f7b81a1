"""Starting a run's zygote process (``episode_worker.py zygote``): standard library only.

The zygote spends its first ~0.1 s importing and warming TraceCore; the harness spends about
as long importing its own libraries. ``python -m tracecore_perf`` therefore starts the
zygote once its flags are parsed and its input checked (``checks``), before those imports,
and hands it to the run, so the two overlap on two cores (about a fifth of the everyday
slice's wall time). Nothing here runs an episode or writes a file anyone sees (the zygote's
start-up output goes to an unlinked temporary file); a run that fails before adopting the
zygote kills it.

:class:`launcher.ZygoteProcess` adopts what :func:`spawn_zygote` started; a zygote started
later in a run (one replacing a lost one) comes from here too.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

TYPE_CHECKING = False  # typing itself costs an import before the zygote can start
if TYPE_CHECKING:
    from typing import IO

    from tracecore_perf.models import IsolationMode

WORKER_SCRIPT = Path(__file__).with_name("episode_worker.py")


def default_isolation() -> IsolationMode:
    return "forkserver" if hasattr(os, "fork") else "spawn"


def default_python() -> str:
    return sys.executable


class SpawnedZygote:
    """A zygote process just started: the process, the harness's end of its control socket,
    and the file its output goes to until the run gives it a log of its own."""

    def __init__(self, process: subprocess.Popen, control: socket.socket, startup_log: IO[bytes], python: str, isolation: str):
        self.process = process
        self.control = control
        self.startup_log = startup_log
        self.python = python
        self.isolation = isolation
        self.adopted = False

    def matches(self, python: str, isolation: str) -> bool:
        return (python, isolation) == (self.python, self.isolation)

    def discard(self) -> None:
        """Kill and reap it, unless a run adopted it (then the run closes it)."""
        if self.adopted:
            return
        self.adopted = True  # once
        if self.process.poll() is None:
            self.process.kill()  # SIGKILL: a zygote still importing has nothing to lose
        self.process.wait()
        self.control.close()
        self.startup_log.close()


def spawn_zygote(python: str, isolation: str) -> SpawnedZygote:
    """Start ``python episode_worker.py zygote ISOLATION HARNESS_PID`` with a Unix socket to
    us as its stdin. Raises OSError when the interpreter cannot be started."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    startup_log = tempfile.TemporaryFile()  # noqa: SIM115 - kept open until the run's log_to()/close()
    try:
        process = subprocess.Popen(
            [python, str(WORKER_SCRIPT), "zygote", isolation, str(os.getpid())],
            stdin=theirs.fileno(),
            stdout=startup_log,
            stderr=startup_log,
            start_new_session=True,  # a terminal's Ctrl-C is the harness's to handle
        )
    except BaseException:
        startup_log.close()
        ours.close()
        raise
    finally:
        theirs.close()
    return SpawnedZygote(process, ours, startup_log, python, isolation)


def prestart(python: str, isolation: str) -> SpawnedZygote | None:
    """The zygote for the run about to start (its input already checked, ``--python``
    included, by ``checks``), or None when it cannot be started here: the run then starts
    its own and reports why that fails."""
    try:
        return spawn_zygote(python, isolation)
    except OSError:
        return None
