"""A run directory gone from its place mid-run: the output folder (or the run directory itself)
removed or renamed while the run wrote to it. The run stops (exit 3) and stays resumable:

- **moved** (renamed, the output folder renamed): the directory still exists, with every row
  and artifact in it, at the place the harness's open ``series.jsonl`` now has
  (``/proc/self/fd``). Nothing is made again; the run is finished from there
  (``--resume NEW_PLACE``), and nothing is published to a folder the harness never chose.
- **removed**: a fresh run directory is made at the old place (its output folder too), with
  the manifest and the rows restored from the writer's private copies (``writer.Ledger``;
  every line checked against its digest). A row whose artifact went with the directory has
  no evidence left: it is kept aside in ``rows-without-artifacts.jsonl`` there, not in the
  series, so ``--resume`` runs its episode again and the run publishes only rows its
  artifacts back.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from pathlib import Path

import msgspec

from tracecore_perf.files import write_atomic_chunks
from tracecore_perf.models import EpisodeRow, Manifest
from tracecore_perf.run.rundir import RunDir, lines
from tracecore_perf.run.writer import Ledger, Ledgers

LOST_ROWS = "rows-without-artifacts.jsonl"
DISAPPEARED = "the run directory disappeared"  # monitor.Monitor's words when it stops the run for this


def gone(run_dir: RunDir) -> bool:
    """Whether nothing stands at the run directory's name any more (its output folder may be
    gone too). Something else standing there is not this: the evidence check sets it aside."""
    return run_dir.identity is not None and not os.path.lexists(run_dir.path)


def moved_to(run_dir: RunDir, ledgers: Ledgers) -> Path | None:
    """Where the run directory is now, if it was moved rather than removed: the folder of the
    harness's open ``series.jsonl``, when it is still the very directory the run made."""
    try:
        where = os.readlink(f"/proc/self/fd/{ledgers.series.file.fileno()}")
    except (OSError, ValueError):
        return None
    if where.endswith(" (deleted)") or not os.path.isabs(where):
        return None
    folder = Path(where).parent
    try:
        info = os.stat(folder)
    except OSError:
        return None
    return folder if (info.st_dev, info.st_ino) == run_dir.identity else None


def settle(run_dir: RunDir, ledgers: Ledgers, manifest: Manifest) -> str:
    """The run directory is gone (``gone``): point ``run_dir`` at where the run now is (moved)
    or make it again with its rows (removed), write the manifest there (``manifest.status``
    as the caller set it), and return what happened, for the stop line."""
    old = run_dir.path
    found = moved_to(run_dir, ledgers)
    if found is not None:
        run_dir.path = found
        manifest.run_dir = str(found)
        with contextlib.suppress(OSError):
            run_dir.write_manifest(manifest)
        return f"{DISAPPEARED}: it was moved to {found} during the run, its rows and artifacts with it"
    old.parent.mkdir(parents=True, exist_ok=True)
    run_dir.create()
    kept, lost = _restore_rows(ledgers.series, run_dir)
    _restore_all(ledgers.samples, run_dir.samples)
    if manifest.attempts:  # this attempt's rows are those restored (earlier attempts' included)
        earlier = sum(record.episodes_run for record in manifest.attempts[:-1])
        manifest.attempts[-1].episodes_run = max(0, kept - earlier)
    run_dir.write_manifest(manifest)
    text = f"{DISAPPEARED}: {old} was removed during the run; a fresh one there holds its {kept} rows"
    if lost:
        text += (
            f" ({lost} rows whose artifacts were removed with it are kept aside in {LOST_ROWS}: "
            "resuming runs their episodes again)"
        )
    return text


def _ours(ledger: Ledger):
    """The lines of the writer's private copy that match its digests, in order."""
    with contextlib.suppress(OSError):
        ledger.copy.flush()
    expected = Counter(ledger.digests)
    ledger.copy.seek(0)
    for line in lines(ledger.copy):
        digest = ledger.digest(line)
        if line.endswith(b"\n") and expected[digest] > 0:
            expected[digest] -= 1
            yield line


def _restore_rows(ledger: Ledger, run_dir: RunDir) -> tuple[int, int]:
    """The rows into the fresh run directory's series; those that name an artifact (gone with
    the old directory) into ``LOST_ROWS`` beside it. Returns (rows kept, rows set aside)."""
    decoder = msgspec.json.Decoder(EpisodeRow)
    kept: list[bytes] = []
    lost: list[bytes] = []
    for line in _ours(ledger):
        try:
            row = decoder.decode(line)
        except msgspec.DecodeError:
            continue
        (lost if row.run_id else kept).append(line)
    write_atomic_chunks(run_dir.series, kept, fsync=False)
    if lost:
        write_atomic_chunks(run_dir.path / LOST_ROWS, lost, fsync=False)
    return len(kept), len(lost)


def _restore_all(ledger: Ledger, path: Path) -> None:
    write_atomic_chunks(path, list(_ours(ledger)), fsync=False)
