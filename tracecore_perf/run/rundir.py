"""The run directory: a run's working state on disk, enough to publish or resume it.

<output>/run-<stamp>/
    manifest.json          the run descriptor, rewritten at each state change
    series.jsonl           one EpisodeRow per finished episode, appended as it ends
    samples.jsonl          one monitor Sample per line
    harness.log            the harness's structlog JSON log
    run.lock               flock()ed by the harness process running or resuming the run, held
                           from before any episode starts until that process ends (empty)
    logs/                  episode output (only episodes that printed), worker stderr
    profiles/              instruction mode: one counted episode per scenario row, its callgrind
                           profile and a traced native replay's Python stacks (``explain``)
    .agent_bench/runs/     TraceCore's run artifacts for exactly this run
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, TypeVar

import msgspec

from tracecore_perf.errors import UsageError
from tracecore_perf.files import read_regular, write_atomic
from tracecore_perf.models import FORMAT_VERSION, EpisodeRow, Manifest, Sample
from tracecore_perf.published import decode_manifest

T = TypeVar("T")

MANIFEST = "manifest.json"
LOCK = "run.lock"
SERIES = "series.jsonl"
SAMPLES = "samples.jsonl"
HARNESS_LOG = "harness.log"
PROFILES = "profiles"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def new_stamp(output_dir: Path, now: datetime | None = None, first_suffix: int = 0) -> str:
    """A stamp no run in ``output_dir`` has used: TraceCore's ``%Y%m%dT%H%M%SZ``, with a
    suffix when two runs start in the same second. ``first_suffix``: start the suffixes there
    (a matrix gives cell N suffix N, so its cells' stamps differ even when cells start in the
    same second, in different folders or on different hosts)."""
    base = (now or utc_now()).strftime("%Y%m%dT%H%M%SZ")
    n = first_suffix
    stamp = f"{base}-{n}" if n else base
    while (output_dir / f"run-{stamp}").exists() or any(output_dir.glob(f"perf-*-{stamp}.*")):
        n += 1
        stamp = f"{base}-{n}"
    return stamp


class RunDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        # the directory this run works in (device, inode), taken when it is made or resumed:
        # an episode may replace it with a link to elsewhere (integrity.check_run looks)
        self.identity: tuple[int, int] | None = None

    def remember(self) -> None:
        info = os.stat(self.path)
        self.identity = (info.st_dev, info.st_ino)

    @property
    def stamp(self) -> str:
        return self.path.name.removeprefix("run-")

    @property
    def output_dir(self) -> Path:
        return self.path.parent

    @property
    def runs_root(self) -> Path:
        return self.path / ".agent_bench" / "runs"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def profiles(self) -> Path:
        """Instruction mode: each scenario row's kept profiles (``explain``)."""
        return self.path / PROFILES

    @property
    def series(self) -> Path:
        return self.path / SERIES

    @property
    def samples(self) -> Path:
        return self.path / SAMPLES

    def create(self) -> None:
        self.path.mkdir(parents=False, exist_ok=False)
        self.logs.mkdir()
        self.runs_root.mkdir(parents=True)
        self.remember()
        self.lock()

    def create_with(self, manifest: Manifest) -> None:
        """Make the run directory with its manifest in it, in one step: it is laid out under a
        hidden name beside its place (``.run-<stamp>.<random>``), locked, and renamed into
        place. Whatever stops the harness meanwhile (even kill -9), no ``run-<stamp>`` exists
        that ``--resume`` could not take; at worst a hidden folder is left, which nothing reads."""
        staging = _new_folder(self.path.parent, f".{self.path.name}.")
        made = RunDir(staging)
        try:
            (staging / "logs").mkdir()
            made.runs_root.mkdir(parents=True)
            made.write_manifest(manifest)
            made.lock()  # the lock is the folder's (its inode): it moves with it
            # new_stamp chose a free name; a file or a folder with anything in it that took the
            # name since makes this fail (an empty folder there would be replaced)
            os.rename(staging, self.path)
        except BaseException:
            made.unlock()
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self.remember()

    def lock(self) -> None:
        """Take the run's lock (``run.lock``, ``flock``), or raise UsageError naming the process
        that holds it: one harness process runs or resumes a run at a time. Taken before any
        episode starts and kept until this process ends (the kernel lets go when it dies, however
        it dies); a process holding it already takes it again. What stands at the name is never
        trusted: a link or anything but a regular file is refused, and the holder is the one
        the kernel names (``/proc/locks``), not what the file says."""
        key = identity(self.path)
        if key in _HELD:
            return
        where = self.path / LOCK
        try:
            fd = os.open(where, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            why = "a link stands at its name" if exc.errno == errno.ELOOP else exc.strerror
            raise UsageError(f"cannot take the run's lock {where}: {why} (move it aside to go on)") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise UsageError(f"cannot take the run's lock {where}: not a regular file (move it aside to go on)")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid, doing = _holder(info)
                raise UsageError(_busy(self.path, pid, doing)) from None
            folder = _lock_folder(self.path)  # the folder too: deleting run.lock cannot undo this one
        except BaseException:
            os.close(fd)
            raise
        _HELD[key] = (fd, folder)

    def unlock(self) -> None:
        """Let go of the run's lock taken by :meth:`lock` (a library caller done with the run)."""
        for fd in _HELD.pop(identity(self.path), ()):
            os.close(fd)

    def episode_log(self, episode_index: int) -> Path:
        return self.logs / f"episode-{episode_index:06d}.log"

    def write_manifest(self, manifest: Manifest) -> None:
        # written in this format's layout, whatever format it was read from (a run begun by an
        # older harness, resumed): the version must say so, or it would be read back as the old one
        manifest.format_version = FORMAT_VERSION
        write_atomic(self.path / MANIFEST, msgspec.json.format(msgspec.json.encode(manifest), indent=2))

    def read_manifest(self) -> Manifest:
        return decode_manifest(read_regular(self.path / MANIFEST))  # a run begun by an older harness too

    def repair_tail(self) -> None:
        """Cut a torn last line (the harness was killed mid-write) off ``series.jsonl`` and
        ``samples.jsonl`` before appending to them again, so it cannot swallow the next row."""
        for path in (self.series, self.samples):
            if not path.exists() or path.stat().st_size == 0:
                continue
            with path.open("rb+") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) == b"\n":
                    continue
                data_end = fh.seek(0, os.SEEK_END)
                keep = 0
                block = 65536
                while data_end > 0 and not keep:
                    start = max(0, data_end - block)
                    fh.seek(start)
                    chunk = fh.read(data_end - start)
                    newline = chunk.rfind(b"\n")
                    if newline >= 0:
                        keep = start + newline + 1
                        break
                    data_end = start
                fh.truncate(keep)

    def iter_rows(self) -> Iterator[EpisodeRow]:
        return iter_jsonl(self.series, EpisodeRow)

    def iter_samples(self) -> Iterator[Sample]:
        return iter_jsonl(self.samples, Sample)


# The run locks this process holds: run directory (device, inode) -> the lock's descriptor.
_HELD: dict[tuple[int, int] | None, tuple[int, int]] = {}  # identity -> (run.lock, the folder)


def _new_folder(parent: Path, prefix: str) -> Path:
    """A new folder of a name no one has (``prefix`` + random), made as mkdir makes any (the
    process's umask applies, unlike mkdtemp's 0700)."""
    while True:
        path = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of what stands at ``path`` now, following links; None if nothing does."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _lock_folder(path: Path) -> int:
    """The run directory itself, flocked (an episode that deletes or replaces ``run.lock``
    leaves this lock where it is): its descriptor, or UsageError naming the holder."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        why = "a link stands at its name" if exc.errno in (errno.ELOOP, errno.ENOTDIR) else exc.strerror
        raise UsageError(f"cannot lock the run directory {path}: {why}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid, doing = _holder(os.fstat(fd))
        os.close(fd)
        raise UsageError(_busy(path, pid, doing)) from None
    return fd


def _busy(path: Path, pid: str, doing: str) -> str:
    return f"{path}: this run is being {doing} by pid {pid}; wait for it to end (or stop it), then resume"


def _holder(info: os.stat_result) -> tuple[str, str]:
    """Who holds the lock on the file ``info`` describes, as the kernel says (nothing anyone
    could have written is asked): the pid /proc/locks lists for it, and whether that process
    resumes the run (``--resume`` on its command line) or runs it."""
    pid = None
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) < 6 or fields[1] != "FLOCK":  # "->": a waiter, not a holder
                    continue
                major, minor, inode = fields[5].split(":")
                device = (int(major, 16), int(minor, 16))
                if int(inode) == info.st_ino and device == (os.major(info.st_dev), os.minor(info.st_dev)):
                    pid = fields[4]
                    break
    except (OSError, ValueError):
        pass
    if pid is None:
        return "unknown (another process)", "run"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            resuming = b"--resume" in fh.read().split(b"\0")
    except OSError:
        resuming = False
    return pid, "resumed" if resuming else "run"


MAX_LINE_BYTES = 1 << 20  # a row or a sample is a few KiB: a longer line is nobody's


def lines(fh: BinaryIO, cap: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """The lines of a file the harness appends to, each at most ``cap`` bytes: an episode can
    make one gigabytes long (a sparse hole), which must cost neither memory nor a crash. A
    longer line is yielded cut to ``cap`` bytes, without its newline (it then decodes as
    nothing and digests as nobody's), and the rest of it is skipped."""
    while line := fh.readline(cap):
        if len(line) == cap and not line.endswith(b"\n"):
            while (rest := fh.readline(cap)) and not rest.endswith(b"\n"):
                pass
        yield line


def iter_jsonl(path: Path, kind: type[T]) -> Iterator[T]:
    """Decode a JSON-lines file one line at a time. A line that does not decode (the torn
    last line of a run killed mid-write) is skipped."""
    if not path.exists():
        return
    decoder = msgspec.json.Decoder(kind)
    with path.open("rb") as fh:
        for line in lines(fh):
            if not line.strip():
                continue
            try:
                yield decoder.decode(line)
            except msgspec.DecodeError:
                continue
