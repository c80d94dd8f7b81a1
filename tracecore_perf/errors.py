"""Errors the CLI turns into one line on stderr and an exit code."""

from __future__ import annotations

import signal
import threading
from pathlib import Path


class UsageError(Exception):
    """Bad input found before any episode starts: exit 2, nothing written."""


class RunAborted(Exception):
    """The run could not go on (disk full, output directory gone): exit 3, rows kept."""


class ClusterUnreachable(Exception):
    """No Ray cluster (or none with a perf_host node) answers at the address given: exit 3."""


class Terminated(KeyboardInterrupt):
    """SIGTERM where no batch is running to handle it (start-up, validation, warm-up,
    publishing, between a matrix's cells): stop as Ctrl-C stops, so every cleanup runs
    (the zygote, the scratch directory), and exit 143. A KeyboardInterrupt, so asyncio and
    anyio let it through as they let Ctrl-C through."""

    exit_code = 143


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
