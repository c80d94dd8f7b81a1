"""The run directory: a run's working state on disk, enough to publish or resume it.

<output>/run-<stamp>/
    manifest.json          the run descriptor, rewritten at each state change
    series.jsonl           one EpisodeRow per finished episode, appended as it ends
    samples.jsonl          one monitor Sample per line
    harness.log            the harness's structlog JSON log
    logs/                  episode output (only episodes that printed), worker stderr
    .agent_bench/runs/     TraceCore's run artifacts for exactly this run
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, TypeVar

import msgspec

from tracecore_perf.files import read_regular, write_atomic
from tracecore_perf.models import EpisodeRow, Manifest, Sample

T = TypeVar("T")

MANIFEST = "manifest.json"
SERIES = "series.jsonl"
SAMPLES = "samples.jsonl"
HARNESS_LOG = "harness.log"


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

    def episode_log(self, episode_index: int) -> Path:
        return self.logs / f"episode-{episode_index:06d}.log"

    def write_manifest(self, manifest: Manifest) -> None:
        write_atomic(self.path / MANIFEST, msgspec.json.format(msgspec.json.encode(manifest), indent=2))

    def read_manifest(self) -> Manifest:
        return msgspec.json.decode(read_regular(self.path / MANIFEST), type=Manifest)

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
