"""Errors the CLI turns into one line on stderr and an exit code."""

from __future__ import annotations

import os
import signal
import stat
import threading
from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    """Every exit code of every command, with what it means (``ExitCode.table()`` is the
    README's table; a test holds the two together)."""

    OK = 0
    FAILED = 1
    USAGE = 2
    STOPPED = 3
    TAINTED = 4
    INTERNAL = 70  # sysexits' EX_SOFTWARE
    INTERRUPTED = 130  # 128 + SIGINT
    READER_GONE = 141  # 128 + SIGPIPE
    TERMINATED = 143  # 128 + SIGTERM

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]

    @classmethod
    def table(cls) -> str:
        rows = [f"| {code.value} | {code.meaning} |" for code in cls]
        return "\n".join(["| exit | meaning |", "|---|---|", *rows])


_MEANINGS = {
    ExitCode.OK: "done: every episode succeeded, every threshold held, no regression",
    ExitCode.FAILED: "some episode failed, a threshold broke, or a regression with `--fail-on regression`",
    ExitCode.USAGE: "bad input: one line on stderr, nothing written, no episode started",
    ExitCode.STOPPED: "the run (or a matrix) had to stop (disk full, output folder gone, no cluster): one line, "
    "rows kept, resumable",
    ExitCode.TAINTED: "the run finished but its evidence was tampered with (published as `tainted`)",
    ExitCode.INTERNAL: "a bug of ours: one line, the traceback in a `tracecore-perf-crash-*.txt` file; please report it",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C): the exact `--resume` command is printed",
    ExitCode.READER_GONE: "the reader of the output went away (`| head`): no traceback; a run still runs to its end "
    "and is published",
    ExitCode.TERMINATED: "terminated (SIGTERM, or SIGHUP: the terminal closed): as Ctrl-C, resumable",
}


class UsageError(Exception):
    """Bad input found before any episode starts: exit 2, nothing written."""


class RunAborted(Exception):
    """The run could not go on (disk full, output directory gone): exit 3, rows kept."""


class CodeChanged(RunAborted):
    """Code the episodes load changed during the run (run.seal): no worker or zygote is
    started from it; the run stops, published ``tainted`` (exit 4)."""

    def __init__(self, files: list[str], message: str) -> None:
        super().__init__(message)
        self.files = files


class ClusterUnreachable(Exception):
    """No Ray cluster (or none with a perf_host node) answers at the address given: exit 3."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP: the terminal closed) where no batch is running to handle it
    (start-up, validation, warm-up, publishing, between a matrix's cells): stop as Ctrl-C
    stops, so every cleanup runs (the zygote, the scratch directory), and exit 143. A
    KeyboardInterrupt, so asyncio and anyio let it through as they let Ctrl-C through."""

    exit_code = ExitCode.TERMINATED


# The signals that terminate a command as SIGTERM does (exit 143, resumable): SIGHUP is what a
# closed terminal or a dropped SSH session sends, and stops the run as a service manager's
# SIGTERM does rather than killing it mid-write.
TERMINATING = (signal.SIGTERM, signal.SIGHUP)


def terminating_code(signum: int) -> int:
    """The exit code of a command stopped by ``signum``: 128 + SIGINT for Ctrl-C, 143 for
    every signal of :data:`TERMINATING`."""
    return ExitCode.TERMINATED if signum in TERMINATING else 128 + signum


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def stop_on_sigterm() -> dict[int, object]:
    """From now on SIGTERM and SIGHUP (a CI timeout, a service manager, a closed terminal)
    raise :class:`Terminated`. A batch handles them itself while it runs, and puts this back
    when it ends. Returns the handlers they had (for :func:`restore_handlers`)."""
    previous: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in TERMINATING:
            previous[sig] = signal.signal(sig, _raise_terminated)
    return previous


def restore_handlers(previous: dict[int, object]) -> None:
    if threading.current_thread() is threading.main_thread():
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)


def read_input(path: Path, what: str, limit: int | None = None) -> bytes:
    """The bytes of an input file the user named (``what``: "scenario file", ...), or one
    UsageError saying why not. Only a regular file of at most ``limit`` bytes (default
    ``defaults.MAX_INPUT_BYTES``) is read: a FIFO (which would wait for a writer), a device
    (``/dev/zero`` never ends) or a file too large is refused before anything is read."""
    from tracecore_perf import defaults

    limit = defaults.MAX_INPUT_BYTES if limit is None else limit
    try:
        # O_NONBLOCK: opening a FIFO must not wait for its writer (it is refused just below)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UsageError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{what} is a directory: {path}") from None
    except OSError as exc:
        raise UsageError(f"{what} unreadable: {path}: {exc.strerror}") from None
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):
        os.close(fd)
        raise UsageError(f"{what} is a directory: {path}")
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(info.st_mode):
            kinds = (
                (stat.S_ISFIFO, "a FIFO"),
                (stat.S_ISCHR, "a device"),
                (stat.S_ISBLK, "a device"),
                (stat.S_ISSOCK, "a socket"),
            )
            kind = next((name for test, name in kinds if test(info.st_mode)), "not a file")
            raise UsageError(f"{what} is not a regular file ({kind}): {path}")
        too_big = f"{what} is larger than {_size(limit)}, the most read: {path}"
        if info.st_size > limit:
            raise UsageError(f"{too_big} ({_size(info.st_size)})")
        os.set_blocking(fd, True)
        try:
            data = fh.read(limit + 1)  # the file may have grown since
        except OSError as exc:
            raise UsageError(f"{what} unreadable: {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise UsageError(too_big)
    return data


def _size(count: int) -> str:
    return f"{count / 1024**2:.3g} MiB" if count >= 1024**2 else f"{count} bytes"
