"""The operating system's calls the roles share: prctl, writing a whole buffer, a process's
children, descriptors, SIGTERM held, a tree removed, a run's folder reached without links.
Standard library only; the harness uses ``prctl`` and ``remove_tree`` too."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import sys

from .state import side

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def prctl(option: int, value: int) -> bool:
    """Linux prctl(2); a no-op elsewhere. The harness's one prctl: the harness's own modules
    (strays, the Ray backend) use this one too."""
    if not sys.platform.startswith("linux"):
        return False
    if side.libc is None:
        import ctypes

        side.libc = ctypes.CDLL(None, use_errno=True)
    return side.libc.prctl(option, value, 0, 0, 0) == 0


def die_with_parent(sig: int, parent_pid: int) -> None:
    prctl(PR_SET_PDEATHSIG, sig)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os.kill(os.getpid(), sig)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def children() -> list[int]:
    pid = os.getpid()
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def fd_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if 0 < soft < 1 << 20 else 1 << 20


@contextlib.contextmanager
def sigterm_held():
    """SIGTERM blocked for the block: one that arrives meanwhile is handled when it ends."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def remove_tree(path: str | os.PathLike) -> None:
    """``shutil.rmtree``, but a tree too deep for its recursion (an episode can build one)
    goes to ``rm -rf``, which walks it without recursing."""
    try:
        shutil.rmtree(path, ignore_errors=True)
    except RecursionError:
        import subprocess

        subprocess.run(["rm", "-rf", "--", os.fspath(path)], check=False, stdin=subprocess.DEVNULL, capture_output=True)


def run_folder(run_dir: str, parts: tuple[str, ...], make: bool = False) -> int:
    """A descriptor of the folder ``run_dir/parts...``, reached without following a link at
    the run directory or anywhere below it (an episode may put one in any of their places,
    pointing outside the run); ``make``: create the missing ones below the run directory."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(run_dir, flags)
    try:
        for part in parts:
            if make:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, dir_fd=fd)
            inner = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd
