"""The series writer: appends each row and sample to its JSON-lines file as it arrives.

Rows come over an anyio memory object stream from the episode tasks and the monitor. Each
line is written and flushed to the OS before the next is taken, so a crash of the harness
(even ``kill -9``) loses no finished episode. A torn last line is tolerated by readers.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream

from tracecore_perf.errors import RunAborted
from tracecore_perf.models import EpisodeRow, Sample


async def write_stream(
    receive: MemoryObjectReceiveStream[EpisodeRow | Sample],
    series_path: Path,
    samples_path: Path,
) -> None:
    encoder = msgspec.json.Encoder()
    buffer = bytearray()
    try:
        with series_path.open("ab") as series, samples_path.open("ab") as samples:
            async with receive:
                async for item in receive:
                    sink = series if isinstance(item, EpisodeRow) else samples
                    encoder.encode_into(item, buffer)
                    buffer.extend(b"\n")
                    sink.write(buffer)
                    sink.flush()
    except OSError as exc:
        # A full disk or a vanished output directory: stop the run, keep what is written.
        raise RunAborted(f"cannot write the run's rows to {series_path.parent}: {exc.strerror or exc}") from exc
