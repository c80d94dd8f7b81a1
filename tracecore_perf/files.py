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

:func:`output_refusal` is the one guard of every output path a user names (``--junit-file``,
``export --output``, ``report --output-dir``, ``history report --output``, the history
database a command writes, ``$GITHUB_STEP_SUMMARY``): it says why a path must not be written,
before any work is done. A run's published files, anything inside a run directory, the
history store, links, FIFOs, devices, sockets and folders are refused; a new path, an empty
file, or a file this tool made for that very purpose is not.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Literal


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


# --- the guard of every output path a user names ---------------------------------------------

# The names of a published run's own files (perf-<kind>-<stamp>.json and the report and charts
# beside them): evidence, never replaced by anything a user points an output flag at.
PUBLISHED_NAME = re.compile(r"^perf-[a-z]+-\d{8}T\d{6}Z(?:-\d+)?\.(?:json|zip|html|xml|png|svg)$")
RUN_DIR_NAME = re.compile(r"^run-\d{8}T\d{6}Z(?:-\d+)?$")  # a run's working directory
SQLITE_MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database (the history store)
_HEAD = 4096  # bytes read of an existing file to tell what it is
_JUNIT_ROOT = re.compile(rb"^\s*(?:<\?xml[^>]*\?>\s*)?(?:<!--.*?-->\s*)*<testsuites[\s/>]", re.DOTALL)
_OUR_PAGE = b'<meta name="generator" content="tracecore-perf'

# What a sink is, so what an existing file at its name may be:
#   junit    a JUnit report (root <testsuites>, as export/junit.py writes it)
#   export   `export`'s JSON: Bencher's BMF object or github-action-benchmark's list
#   page     an HTML page of ours (its <meta name="generator" content="tracecore-perf ...">)
#   history  the history store: an SQLite file (the store itself refuses another application's)
#   append   appended to (``$GITHUB_STEP_SUMMARY``): any regular file of one name
#   folder   an existing folder files are written into (``report --output-dir``), not a link
#   runs     a folder where runs are made (``--output-dir`` of run, ab, matrix, continuous):
#            only never inside a run directory (it may be a link, or not exist yet)
OutputKind = Literal["junit", "export", "page", "history", "append", "folder", "runs"]
_MADE_FOR = {
    "junit": "a JUnit report (its root element is not <testsuites>)",
    "export": "an export of this tool (Bencher's BMF object or github-action-benchmark's list)",
    "page": "an HTML page of this tool (no tracecore-perf generator tag)",
}


def output_refusal(raw: str | Path, kind: OutputKind) -> str | None:
    """Why the output path ``raw`` must not be written as a ``kind`` sink (a phrase for the
    caller's one line, which names the flag and the path), or None when it may be. Never
    follows a link at the name, never opens a FIFO or a device, changes nothing."""
    text = str(raw)
    path = Path(text)
    folder = kind in ("folder", "runs")
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):  # a new name (its folder is the caller's to check)
        info = None
    except OSError as exc:
        return f"cannot be examined ({exc.strerror or exc})"
    if info is not None and stat.S_ISLNK(info.st_mode) and kind != "runs":
        return "is a symbolic link: nothing is written through a link"
    if folder:
        if kind == "folder" and (info is None or not stat.S_ISDIR(info.st_mode)):
            return "must be an existing folder"
        inside = _run_dir_around(path, itself=True)
        return f"is inside the run directory {inside}: a run's files are its evidence" if inside else None
    if text.endswith("/") or (info is not None and stat.S_ISDIR(info.st_mode)):
        return "must be a file, not a folder"
    if info is not None and not stat.S_ISREG(info.st_mode):
        return f"is {foreign_at(path)}, not a regular file: not written"
    if kind != "history" and not path.parent.is_dir():
        return "must be a file in an existing folder"
    inside = _run_dir_around(path.parent, itself=True)
    if inside:
        return f"is inside the run directory {inside}: a run's files are its evidence, never replaced"
    if PUBLISHED_NAME.match(path.name):
        return "is named as a published run's file: a run's evidence is never replaced"
    if info is None:
        return None  # a new file
    if info.st_nlink > 1:
        return f"has {info.st_nlink} names (hard links): not written"
    if info.st_size == 0:
        return None  # an empty file (mktemp's)
    try:
        head = _read_head(path)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc}): not written"
    if head.startswith(SQLITE_MAGIC):
        return None if kind == "history" else "is an SQLite database (a history store?): never replaced"
    if kind in ("append", "history") or _made_by_us(path, head, kind):
        return None  # a history database of another application is the store's to refuse
    return f"is an existing file that is not {_MADE_FOR[kind]}: not replaced (remove it, or name a new file)"


def _run_dir_around(path: Path, *, itself: bool) -> str | None:
    """The run directory ``path`` is in (or is, with ``itself``), as a path; None if none.
    Links on the way are followed (``os.path.realpath``), so no link leads into one unseen."""
    real = Path(os.path.realpath(path))
    chain = [real, *real.parents] if itself else list(real.parents)
    return next((str(p) for p in chain if RUN_DIR_NAME.match(p.name)), None)


def _read_head(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(22, "not a regular file", str(path))
        return fh.read(_HEAD)


def _made_by_us(path: Path, head: bytes, kind: str) -> bool:
    """Whether the existing file at ``path`` is what this tool writes to a ``kind`` sink."""
    if kind == "junit":
        return bool(_JUNIT_ROOT.match(head))
    if kind == "page":
        return head.lstrip().lower().startswith(b"<!doctype html") and _OUR_PAGE in head
    if kind == "export":
        try:
            found = json.loads(read_regular(path))
        except (OSError, ValueError):
            return False
        if isinstance(found, dict):  # BMF: {benchmark: {measure: {"value": ...}}}
            return all(
                isinstance(measures, dict) and all(isinstance(m, dict) and "value" in m for m in measures.values())
                for measures in found.values()
            )
        # github-action-benchmark: [{"name", "unit", "value", ...}]
        return isinstance(found, list) and all(isinstance(e, dict) and {"name", "unit", "value"} <= e.keys() for e in found)
    return False


def append_regular(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` (created if absent), never through a link (O_NOFOLLOW),
    never into a FIFO or a device (O_NONBLOCK, then checked), never into a file of more than
    one name. Raises OSError otherwise, having written nothing."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    fd = os.open(path, flags, 0o644)
    with open(fd, "ab") as fh:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
            raise OSError(22, "not a regular file of one name", str(path))
        os.set_blocking(fd, True)
        fh.write(data)
