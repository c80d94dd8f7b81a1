"""Errors the CLI turns into one line on stderr and an exit code."""

from __future__ import annotations

import signal
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
    ExitCode.READER_GONE: "the reader of the output went away (`| head`); a run is still published",
    ExitCode.TERMINATED: "terminated (SIGTERM): as Ctrl-C, resumable",
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
    """SIGTERM where no batch is running to handle it (start-up, validation, warm-up,
    publishing, between a matrix's cells): stop as Ctrl-C stops, so every cleanup runs
    (the zygote, the scratch directory), and exit 143. A KeyboardInterrupt, so asyncio and
    anyio let it through as they let Ctrl-C through."""

    exit_code = ExitCode.TERMINATED


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def stop_on_sigterm() -> None:
    """From now on SIGTERM (a CI timeout, a service manager) raises :class:`Terminated`. A
    batch handles SIGTERM itself while it runs, and puts this back when it ends."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


def read_input(path: Path, what: str) -> bytes:
    """The bytes of an input file the user named (``what``: "scenario file", ...), or one
    UsageError saying why not."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{what} is a directory: {path}") from None
    except OSError as exc:
        raise UsageError(f"{what} unreadable: {path}: {exc.strerror}") from None
