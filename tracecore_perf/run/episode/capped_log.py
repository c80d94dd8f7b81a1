"""An episode's output (stdout and stderr together), kept up to a cap in the run's logs."""

from __future__ import annotations

import os

from .system import run_folder


class CappedLog:
    """Keeps the first ``cap`` bytes of an episode's stdout+stderr in a file (created only
    when there is output) and counts the rest, so a flood neither blocks nor fills disk."""

    def __init__(self, path: str | None, cap: int) -> None:
        self.path, self.cap, self.kept, self.total, self.fh = path, cap, 0, 0, None

    def write(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self.path is None or self.kept >= self.cap:
            return
        if self.fh is None:
            try:
                self.fh = _create(self.path)
            except OSError:  # the run directory is gone or full: count, keep nothing
                self.path = None
                return
        piece = chunk[: self.cap - self.kept]
        try:
            self.fh.write(piece)
        except OSError:  # a full disk: stop keeping output, never stop the worker
            self.path, self.kept = None, self.cap
            return
        self.kept += len(piece)

    def close(self) -> None:
        if self.fh is None:
            return
        try:
            if self.total > self.kept and self.path is not None:
                self.fh.write(f"\n[tracecore-perf: output capped, {self.total - self.kept} more bytes dropped]\n".encode())
            self.fh.close()
        except OSError:
            pass


def _create(path: str):
    """A new file at ``path`` (``<run>/logs/<name>``), never through a link or into a FIFO an
    episode planted there or in a folder's place: O_EXCL, below the run directory reached link
    by link; if the name is taken, a fresh one beside it (``<name>.<random>``)."""
    logs = os.path.dirname(path)
    folder = run_folder(os.path.dirname(logs), (os.path.basename(logs),))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        name = os.path.basename(path)
        while True:
            try:
                fd = os.open(name, flags, 0o644, dir_fd=folder)
                break
            except FileExistsError:
                name = f"{os.path.basename(path)}.{os.urandom(4).hex()}"
    finally:
        os.close(folder)
    return open(fd, "wb")  # noqa: SIM115 - the caller closes it
