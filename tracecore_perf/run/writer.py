"""The series writer: appends each row and sample to its JSON-lines file as it arrives.

Rows come over an anyio memory object stream from the episode tasks and the monitor. Each
line is written and flushed to the OS before the next is taken, so a crash of the harness
(even ``kill -9``) loses no finished episode. A torn last line is tolerated by readers.

Each file is a :class:`Ledger`: besides the file, the writer keeps a keyed digest of every
line it wrote (8 bytes a line) and a private copy of the lines in an unlinked file, so that
``integrity`` can later tell its own lines from lines anyone else wrote, and put its own lines
back even if the file was rewritten, replaced or deleted meanwhile.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from array import array
from collections.abc import Callable
from pathlib import Path

import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream

from tracecore_perf.errors import RunAborted
from tracecore_perf.files import open_append
from tracecore_perf.models import EpisodeRow, Sample
from tracecore_perf.run.rundir import lines


class Ledger:
    """One JSON-lines file the harness appends to, a digest of each line it appended, and a
    copy of those lines in a file with no name (nothing can find it by walking the run
    directory; it is gone when the harness closes it)."""

    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        self.key = key  # random per run: nobody else can make a line with one of our digests
        self.file = open_append(path)  # never through a link or into a FIFO planted at the name
        info = os.fstat(self.file.fileno())
        self.identity = (info.st_dev, info.st_ino)
        self.copy = tempfile.TemporaryFile(dir=path.parent)  # noqa: SIM115 - closed in close()
        self.digests = array("Q")
        # Why the copy may lack lines (a full disk): restoring from it then loses those lines.
        self.copy_error: OSError | None = None
        # Lines already there (a resume) were written by an earlier attempt: they are taken
        # as found; what happens to them from now on is checked.
        with path.open("rb") as earlier:
            for line in lines(earlier):
                self.copy.write(line)
                self.digests.append(self.digest(line))
        self.copy.flush()

    def digest(self, line: bytes) -> int:
        return int.from_bytes(hashlib.blake2b(line, digest_size=8, key=self.key).digest(), "little")

    def append(self, line: bytes) -> None:
        self.file.write(line)
        self.commit(line)

    def commit(self, line: bytes) -> None:
        """The appended ``line`` onto disk and into the ledger. After a failed flush the line
        is still in the file's buffer: ``commit`` again, never ``append``, to retry."""
        self.file.flush()  # the row is on disk before the next is taken (a crash loses none)
        # The line is in the file: it is ours whatever happens to the copy below.
        self.digests.append(self.digest(line))
        try:
            self.copy.write(line)  # buffered: it is only read back by the evidence check
        except OSError as exc:  # the copy shares the run's disk: a full disk keeps it short
            self.copy_error = self.copy_error or exc

    def close(self) -> None:
        # Closing flushes; on a full disk that fails again, and nothing more can be saved.
        for fh in (self.file, self.copy):
            with contextlib.suppress(OSError):
                fh.close()


class Ledgers:
    """The run's two streams: one row per episode, one sample per monitor reading."""

    def __init__(self, series: Ledger, samples: Ledger) -> None:
        self.series = series
        self.samples = samples

    def close(self) -> None:
        self.series.close()
        self.samples.close()


def open_ledgers(series_path: Path, samples_path: Path) -> Ledgers:
    key = os.urandom(16)
    try:
        return Ledgers(series=Ledger(series_path, key), samples=Ledger(samples_path, key))
    except OSError as exc:
        raise RunAborted(f"cannot open the run's rows in {series_path.parent}: {exc.strerror or exc}") from exc


async def write_stream(
    receive: MemoryObjectReceiveStream[EpisodeRow | Sample],
    ledgers: Ledgers,
    restore_limits: Callable[[], list[str]] | None = None,
) -> None:
    """Append each row and sample as it comes. ``restore_limits`` (limits.LimitGuard.check):
    a write refused because an episode lowered the harness's limits (a file size limit) is
    tried once more after they are put back."""
    encoder = msgspec.json.Encoder()
    buffer = bytearray()
    try:
        async with receive:
            async for item in receive:
                ledger = ledgers.series if isinstance(item, EpisodeRow) else ledgers.samples
                encoder.encode_into(item, buffer)
                buffer.extend(b"\n")
                line = bytes(buffer)
                try:
                    ledger.append(line)
                except OSError:
                    if restore_limits is None or not restore_limits():
                        raise
                    ledger.commit(line)
    except OSError as exc:
        # A full disk or a vanished output directory: stop the run, keep what is written.
        raise RunAborted(f"cannot write the run's rows to {ledgers.series.path.parent}: {exc.strerror or exc}") from exc
