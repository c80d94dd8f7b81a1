"""Instruction mode (``--instructions``): reading the count callgrind wrote for each episode
process as it exited, refusing a count file that is not callgrind's last word, the zygote's
calibration of this interpreter's rate under Valgrind, and counts implausibly low for the CPU
an episode used. The folder and the rate are ``side.callgrind_dir`` and ``side.counted_rate``;
the harness reads its own processes' counts with :func:`callgrind_count`."""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time

from .state import side

COUNT_RATE_FLOOR = 0.3  # honest episodes of the default rows: 0.58-0.82 of the calibration's rate
COUNT_JUDGED_CPU_S = 0.05  # below this much CPU, translation dominates and the rate says nothing


def episode_instructions(
    pid: int, ended_at: float, keep_to: str | None = None, folder_id: list[int] | None = None
) -> tuple[int | None, str | None, str | None]:
    """In instruction mode, the user-space instructions the episode process ``pid`` executed
    from its fork to its exit (the ``summary:`` line of the file callgrind wrote as it exited;
    ``totals:`` also counts the frames that were live at the zeroing), and why there is no
    such figure: no file (a killed process writes none), a file that is not the one callgrind
    wrote at its exit (a link, another kind of file, one changed after ``ended_at``), counts
    dumped mid-run (a client request, which zeroes them), a count out of range. The files are
    removed; with ``keep_to``, a count's whole file (its profile: ``explain`` reads it) is
    copied there first, and the third value is the copy's SHA-256. (None, None, None) outside
    instruction mode."""
    if side.callgrind_dir is None:
        return None, None, None
    name = f"callgrind.out.{pid}"
    parts = [entry for entry in os.listdir(side.callgrind_dir) if entry.startswith(f"{name}.")]
    try:
        header = _count_header(os.path.join(side.callgrind_dir, name), ended_at, keep_to, folder_id)
    finally:
        for entry in [name, *parts]:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(side.callgrind_dir, entry))
    kept = None
    if isinstance(header, tuple):
        header, kept = header
    count, error = _checked_count(pid, header, parts)
    if count is None and kept is not None:
        with contextlib.suppress(OSError):
            os.unlink(keep_to)  # type: ignore[arg-type]
        kept = None
    return count, error, kept


def _checked_count(pid: int, header: bytes | str, parts: list[str]) -> tuple[int | None, str | None]:
    if isinstance(header, str):
        return None, header
    if parts or not re.search(rb"^desc: Trigger: Program termination$", header, re.MULTILINE):
        return None, "it had callgrind dump its counts before its end (a client request, which zeroes them)"
    # Each of these once, and as callgrind writes them: text an agent writes into Valgrind's
    # memory (the command line it keeps for the header) would add lines, never take its own away.
    lines = header.splitlines()
    keys = [b"pid:", b"part:", b"desc: Trigger:", b"events:", b"summary:"]
    if any(sum(line.startswith(key) for line in lines) != 1 for key in keys) or f"pid: {pid}".encode() not in lines:
        return None, "its count file is not one process's count as callgrind writes it (lines added to its header)"
    count = _summary(header)
    if count is None or not 0 < count < 2**63:
        return None, f"its count file holds no count of one process ({count})"
    return count, None


def forget_count(pid: int) -> None:
    """Remove whatever stands at the names callgrind will write ``pid``'s count under, as soon
    as ``pid`` is forked: a link or file planted there before (by an agent file's check, or an
    episode, for pids to come) is never taken for its count."""
    if side.callgrind_dir is None:
        return
    name = f"callgrind.out.{pid}"
    with contextlib.suppress(OSError):
        for entry in os.listdir(side.callgrind_dir):
            if entry == name or entry.startswith(f"{name}."):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(side.callgrind_dir, entry))


def _count_header(
    path: str, ended_at: float, keep_to: str | None = None, folder_id: list[int] | None = None
) -> bytes | str | tuple[bytes, str | None]:
    """The head of the count file at ``path`` if it is the one callgrind wrote as the process
    ended (a regular file of one name, unchanged since ``ended_at``), else why not. With
    ``keep_to``: the head and the SHA-256 of the whole file copied there (None when it could
    not be copied: no profile, the count stands)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return "callgrind wrote no count for it"
    except OSError:
        return "its count file was replaced (a link, or not a file)"
    try:
        facts = os.fstat(fd)
        if not stat.S_ISREG(facts.st_mode) or facts.st_nlink != 1:
            return "its count file was replaced (not a regular file, or linked elsewhere)"
        if facts.st_ctime > ended_at:
            return "its count file changed after the episode process ended"
        header = os.read(fd, 8192)
        if keep_to is None:
            return header
        os.lseek(fd, 0, os.SEEK_SET)
        return header, copy_profile(fd, keep_to, folder_id)
    finally:
        os.close(fd)


PROFILE_CAP_BYTES = 64 * 1024 * 1024  # an episode's callgrind profile: ~0.5 MB for the default rows


def copy_profile(fd: int, keep_to: str, folder_id: list[int] | None = None) -> str | None:
    """Copy what ``fd`` reads (at most PROFILE_CAP_BYTES) to a new file at ``keep_to``, written
    beside it under a name of its own and renamed into place, in the folder the harness made
    (``folder_id``: its device and inode; a folder replaced by a link, or by another, is not
    written into). Its SHA-256, or None when it could not be kept (nothing is left then)."""
    import hashlib

    folder, name = os.path.split(keep_to)
    try:
        at = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return None
    digest = hashlib.sha256()
    partial = f".{name}.{os.urandom(8).hex()}.partial"
    out = -1
    try:
        facts = os.fstat(at)
        if folder_id is not None and [facts.st_dev, facts.st_ino] != list(folder_id):
            return None
        out = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=at)
        total = 0
        while chunk := os.read(fd, 1 << 20):
            total += len(chunk)
            if total > PROFILE_CAP_BYTES:
                raise OSError("profile larger than the cap")
            digest.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(out, view) :]
        os.close(out)
        out = -1
        os.rename(partial, name, src_dir_fd=at, dst_dir_fd=at)
    except OSError:
        if out >= 0:
            os.close(out)
        with contextlib.suppress(OSError):
            os.unlink(partial, dir_fd=at)
        return None
    finally:
        os.close(at)
    return digest.hexdigest()


def implausible_count(count: int, cpu_user_s: float) -> str | None:
    """Why ``count`` cannot be what an episode that used ``cpu_user_s`` of CPU under callgrind
    executed, or None: far fewer instructions than this interpreter executes in that time."""
    if side.counted_rate is None or cpu_user_s < COUNT_JUDGED_CPU_S:
        return None
    if side.counted_rate <= 0:
        return "this interpreter's rate under Valgrind could not be measured (its calibration lost its count): no count is judged"
    expected = side.counted_rate * cpu_user_s
    if count >= COUNT_RATE_FLOOR * expected:
        return None
    return (
        f"{count / 1e6:.1f} M instructions counted for {cpu_user_s:.2f} s of CPU under Valgrind, under "
        f"{COUNT_RATE_FLOOR:.0%} of the {side.counted_rate / 1e6:.0f} M per second this interpreter executes there: "
        "its counting was zeroed or switched off (Valgrind client requests)"
    )


def calibrate() -> float:
    """In the zygote, under callgrind: the instructions per second of user CPU a forked child
    executes on a fixed piece of Python, from its count file and ``wait4``; 0.0 when three
    tries lost their count (every count of the run is then no figure: never unjudged)."""
    for _ in range(3):
        pid = os.fork()
        if pid == 0:
            total, table = 0, {}
            for i in range(60000):
                total += i % 7
                if i % 4 == 0:
                    table[str(i)] = total
            os._exit(0)
        forget_count(pid)
        _, _, usage = os.wait4(pid, 0)
        count, _, _ = episode_instructions(pid, time.time())
        if count and usage.ru_utime > 0:
            return count / usage.ru_utime
    return 0.0


def callgrind_count(path: str) -> int | None:
    """The instructions in callgrind's file ``path``: its ``summary:`` line, everything the
    process executed after its counters were zeroed (``totals:`` also counts the frames that
    were live then). None when there is no such file or line (a process killed mid-write)."""
    try:
        with open(path, "rb") as fh:
            return _summary(fh.read(8192))
    except OSError:
        return None


def _summary(header: bytes) -> int | None:
    match = re.search(rb"^summary: (\d+)$", header, re.MULTILINE)
    return int(match.group(1)) if match else None
