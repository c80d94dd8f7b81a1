"""Writing files in folders an episode can reach: never through a link, never into a FIFO.

Episodes run as the same user as the harness, so anything can be waiting at a name the
harness is about to write: a symlink to a file outside the run (writing through it would
overwrite that file), a FIFO (opening it blocks until a reader comes), a directory. Every
file the harness writes after episodes have run goes through :func:`write_atomic` or
:func:`write_atomic_chunks`: the bytes go into a temporary file that did not exist before
(``mkstemp``: ``O_CREAT|O_EXCL``, a random name), which is then renamed over the target.
A rename replaces whatever is at the target name (the link itself, never what it points to)
and never opens it, so nothing is written through and nothing is waited on.
:func:`foreign_at` tells the caller whether something other than a regular file is at a name
(the evidence check sets such things aside before publishing).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a fresh temporary file and a rename, so a reader
    never sees half a file and nothing planted at either name is written through."""
    write_atomic_chunks(path, (data,))


def write_atomic_chunks(path: Path, chunks: Iterable[bytes], *, fsync: bool = True) -> None:
    """:func:`write_atomic` for data produced a piece at a time (a long JSON array)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with open(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; published files are for reading
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def foreign_at(path: Path) -> str | None:
    """What is at ``path`` when it is neither absent nor a regular file ("a symbolic link",
    "a FIFO", ...); None otherwise. Never follows a link and never opens the path."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISREG(mode):
        return None
    kinds = (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "a device file")


def read_regular(path: Path, limit: int = 64 * 1024 * 1024) -> bytes:
    """The bytes of ``path`` if it is a regular file (not a link, FIFO or device: opened
    with O_NOFOLLOW|O_NONBLOCK, so a FIFO cannot block the reader). Raises OSError (ELOOP,
    EINVAL for anything but a regular file, EFBIG past ``limit``)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with open(fd, "rb") as fh:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(22, "not a regular file", str(path))
        if info.st_size > limit:
            raise OSError(27, f"larger than {limit} bytes", str(path))
        return fh.read(limit + 1)


def sha256_of(path: str | Path) -> bytes | None:
    """SHA-256 of a regular file's bytes, never through a link nor blocking on a FIFO; None
    when nothing, or something other than a regular file, is at ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        # Read in 64 KiB pieces: hashlib.file_digest zeroes a 256 KiB buffer for every file,
        # which was half the cost of sealing TraceCore's ~280 small files.
        digest = hashlib.sha256()
        while chunk := os.read(fd, 1 << 16):
            digest.update(chunk)
        return digest.digest()
    except OSError:
        return None
    finally:
        os.close(fd)


def open_append(path: Path):
    """``path`` opened to append, created if absent, never through a link (O_NOFOLLOW) and
    never a FIFO (O_NONBLOCK, then checked). Whatever else is at the name is moved out of
    the way first (to ``<name>.planted-*``), so a log can always be kept."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    for _ in range(3):
        if foreign_at(path) is not None:
            os.replace(path, tempfile.mkdtemp(prefix=f"{path.name}.planted-", dir=path.parent) + "/planted")
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as exc:
            if exc.errno in (40, 6):  # ELOOP (a link), ENXIO (a FIFO with no reader): planted since
                continue
            raise
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.set_blocking(fd, True)
            return open(fd, "ab")  # noqa: SIM115 - the caller closes it
        os.close(fd)
    raise OSError(17, "something keeps appearing at this name", str(path))
