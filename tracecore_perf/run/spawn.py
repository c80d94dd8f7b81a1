"""Starting a run's zygote process (``episode_process.py zygote``): standard library only.

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

from tracecore_perf.run.episode.constants import CALLGRIND_DIR_ENV

TYPE_CHECKING = False  # typing itself costs an import before the zygote can start
if TYPE_CHECKING:
    from typing import IO

    from tracecore_perf.settings import IsolationMode

WORKER_SCRIPT = Path(__file__).with_name("episode_process.py")  # the fork loop; the roles are in episode/
# Instruction mode: the hash seed every counted interpreter gets (so dict and set order, and
# with them the instructions, repeat from run to run), and where the workers find the folder
# callgrind writes each process's count into (CALLGRIND_DIR_ENV, episode/constants.py).
HASH_SEED = 0
# Every process of this harness's runs carries this in its environment (strays.sweep finds
# what outlives its worker and zygote by it); a token per harness process, whose runs are
# one after another.
TOKEN_ENV = "TRACECORE_PERF_RUN"
RUN_TOKEN = os.urandom(8).hex()


def callgrind_prefix(callgrind_dir: str) -> list[str]:
    """The command that runs the zygote under callgrind: a count per process, each written
    as the process exits into ``callgrind_dir`` and zeroed when a forked child starts
    (``PyOS_AfterFork_Child``), so an episode process's file holds exactly its episode.
    Children that exec run natively (``--trace-children=no``, callgrind's default); an
    episode can start none (``episode/sandbox.forbid_new_processes``). No gdbserver
    (``--vgdb=no``): nothing, ``callgrind_control`` included, can switch a count off from outside."""
    return [
        "valgrind",
        "-q",
        "--tool=callgrind",
        "--vgdb=no",
        "--zero-before=PyOS_AfterFork_Child",
        f"--callgrind-out-file={os.path.join(callgrind_dir, 'callgrind.out.%p')}",
    ]


def new_callgrind_dir() -> str:
    return tempfile.mkdtemp(prefix="tracecore-perf-callgrind-")


def default_isolation() -> IsolationMode:
    return "forkserver" if hasattr(os, "fork") else "spawn"


def default_python() -> str:
    return sys.executable


class SpawnedZygote:
    """A zygote process just started: the process, the harness's end of its control socket,
    and the file its output goes to until the run gives it a log of its own."""

    def __init__(
        self,
        process: subprocess.Popen,
        control: socket.socket,
        startup_log: IO[bytes],
        python: str,
        isolation: str,
        callgrind_dir: str | None = None,
    ):
        self.process = process
        self.control = control
        self.startup_log = startup_log
        self.python = python
        self.isolation = isolation
        self.callgrind_dir = callgrind_dir  # instruction mode: where its processes' counts go
        self.adopted = False

    def matches(self, python: str, isolation: str, instructions: bool = False) -> bool:
        return (python, isolation, instructions) == (self.python, self.isolation, self.callgrind_dir is not None)

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
        if self.callgrind_dir is not None:
            import shutil

            shutil.rmtree(self.callgrind_dir, ignore_errors=True)


def spawn_zygote(python: str, isolation: str, callgrind_dir: str | None = None) -> SpawnedZygote:
    """Start ``python episode_process.py zygote ISOLATION HARNESS_PID`` with a Unix socket to
    us as its stdin; with ``callgrind_dir``, under callgrind (instruction mode), with the
    fixed hash seed. Raises OSError when the interpreter (or valgrind) cannot be started."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    startup_log = tempfile.TemporaryFile()  # noqa: SIM115 - kept open until the run's log_to()/close()
    argv = [python, str(WORKER_SCRIPT), "zygote", isolation, str(os.getpid())]
    env = dict(os.environ, **{TOKEN_ENV: RUN_TOKEN})
    if callgrind_dir is not None:
        argv = callgrind_prefix(callgrind_dir) + argv
        env.update({"PYTHONHASHSEED": str(HASH_SEED), CALLGRIND_DIR_ENV: callgrind_dir})
    try:
        process = subprocess.Popen(
            argv,
            env=env,
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
    return SpawnedZygote(process, ours, startup_log, python, isolation, callgrind_dir)


def prestart(python: str, isolation: str, instructions: bool = False) -> SpawnedZygote | None:
    """The zygote for the run about to start (its input already checked, ``--python``
    included, by ``checks``), or None when it cannot be started here: the run then starts
    its own and reports why that fails."""
    callgrind_dir = new_callgrind_dir() if instructions else None
    try:
        return spawn_zygote(python, isolation, callgrind_dir)
    except OSError:
        if callgrind_dir is not None:
            os.rmdir(callgrind_dir)
        return None


def valgrind_version() -> str:
    """``valgrind --version`` (e.g. ``valgrind-3.19.0``), recorded with every count."""
    try:
        return subprocess.run(["valgrind", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
