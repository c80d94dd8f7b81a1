"""Errors the CLI turns into one line on stderr and an exit code."""

from __future__ import annotations

from pathlib import Path


class UsageError(Exception):
    """Bad input found before any episode starts: exit 2, nothing written."""


class RunAborted(Exception):
    """The run could not go on (disk full, output directory gone): exit 3, rows kept."""


class ClusterUnreachable(Exception):
    """No Ray cluster (or none with a perf_host node) answers at the address given: exit 3."""


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
