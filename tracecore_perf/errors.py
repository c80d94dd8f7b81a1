"""Errors the CLI turns into one line on stderr and an exit code."""

from __future__ import annotations


class UsageError(Exception):
    """Bad input found before any episode starts: exit 2, nothing written."""


class RunAborted(Exception):
    """The run could not go on (disk full, output directory gone): exit 3, rows kept."""


class ClusterUnreachable(Exception):
    """No Ray cluster (or none with a perf_host node) answers at the address given: exit 3."""
