"""Publishing: from a run directory's streams to TraceCore's performance guide's artifact set.

Everything here streams: the series is read twice (once to index rows by episode and fold
them into the summary, once to write them out in episode order), so publishing a
10k-episode run holds offsets and latencies, never the rows or TraceCore's artifacts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import zipfile
from array import array
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from tracecore_perf.files import write_atomic, write_atomic_chunks
from tracecore_perf.models import (
    ARTIFACT_KINDS,
    FORMAT_VERSION,
    TIMING_MIXED,
    TIMING_UNDER_VALGRIND,
    BatchSummary,
    EpisodeRow,
    InstructionFigures,
    Integrity,
    Manifest,
    ProcessShare,
    ResourcePeaks,
    RunArtifactStats,
    Summary,
    SystemSamples,
    TelemetryVerbosity,
    artifact_path,
)
from tracecore_perf.run.rundir import RunDir, lines
from tracecore_perf.settings import KeepRuns
from tracecore_perf.stats import distribution


def _pretty(value: Any) -> bytes:
    return msgspec.json.format(msgspec.json.encode(value), indent=2)


class SeriesIndex:
    """One pass over ``series.jsonl``: where each episode's row is, and the summary folds.

    The first readable row of an episode wins; a resumed run never writes a second one,
    and a torn line is skipped. Per-row figures are kept in flat arrays (8 bytes each), so
    indexing a 10k-episode run costs the harness well under a megabyte.
    """

    def __init__(self, run_dir: RunDir, *, with_run_ids: bool = False) -> None:
        self.indices = array("q")  # episode index of each kept row, in file order
        self.starts = array("q")  # byte offset of that row in series.jsonl
        self.lengths = array("q")
        self._seen = bytearray()  # one flag per episode index
        # only with_run_ids: each row's run id and artifact digest (what a resume must not orphan)
        self.run_ids: dict[str, bytes | None] = {}
        self.failed_run_ids: set[str] = set()
        self.wall = array("d")
        self.episode_s = array("d")
        self.queue_s = array("d")
        self.reasons: Counter[str] = Counter()
        self.attempts: Counter[int] = Counter()
        self.passed = self.timed_out = 0
        self.artifact_bytes_total = self.artifact_bytes_max = 0
        self.llm_entries = self.prompt_bytes = self.completion_bytes = self.tokens = 0
        self.max_rss = 0
        self.cpu_s = 0.0
        self.episodes = ProcessShare()  # the episode processes, summed (ResourcePeaks.parts)
        self.native_episodes = ProcessShare()  # instruction mode: their native twins
        # instruction mode: each (agent, task_ref)'s counts of successful episodes, and their
        # native twins' system time and minor faults
        self.instructions: dict[tuple[str, str], array] = {}
        self.native_only = 0  # episodes of an instruction run past --counted-per-row, run natively
        self.native_sys_s: dict[tuple[str, str], array] = {}
        self.native_faults: dict[tuple[str, str], array] = {}
        self._with_run_ids = with_run_ids
        decoder = msgspec.json.Decoder(EpisodeRow)
        if not run_dir.series.exists():
            return
        with run_dir.series.open("rb") as fh:
            offset = 0
            for line in lines(fh):
                start, offset = offset, fh.tell()
                try:
                    row = decoder.decode(line)
                except msgspec.DecodeError:
                    continue
                if self.has(row.episode_index):
                    continue
                if row.episode_index >= len(self._seen):
                    self._seen.extend(bytes(row.episode_index + 1 - len(self._seen)))
                self._seen[row.episode_index] = 1
                self.indices.append(row.episode_index)
                self.starts.append(start)
                self.lengths.append(len(line))
                self._fold(row)

    def has(self, episode_index: int) -> bool:
        return episode_index < len(self._seen) and self._seen[episode_index] == 1

    def done(self) -> set[int]:
        return set(self.indices)

    def in_episode_order(self) -> list[int]:
        """Positions of the kept rows, sorted by episode index."""
        return sorted(range(len(self.indices)), key=self.indices.__getitem__)

    def _fold(self, row: EpisodeRow) -> None:
        self.attempts[row.attempt] += 1
        if row.run_id:
            if self._with_run_ids:
                self.run_ids[row.run_id] = row.artifact_digest
            if not row.success:
                self.failed_run_ids.add(row.run_id)
        self.wall.append(row.wall_clock_s)
        if row.episode_s is not None:
            self.episode_s.append(row.episode_s)
        self.queue_s.append(row.queue_s)
        if row.success:
            self.passed += 1
        else:
            self.reasons[row.error or "unsuccessful_run"] += 1
        self.timed_out += row.timed_out
        self.artifact_bytes_total += row.artifact_bytes
        self.artifact_bytes_max = max(self.artifact_bytes_max, row.artifact_bytes)
        self.llm_entries += row.llm_trace_entries
        self.prompt_bytes += row.prompt_bytes
        self.completion_bytes += row.completion_bytes
        self.tokens += row.tokens_used
        self.max_rss = max(self.max_rss, row.max_rss_bytes)
        self.cpu_s += row.cpu_s
        self.native_only += row.native_only
        if not row.native_only:  # an episode run only natively is the native processes' share (below)
            self.episodes.user_s += row.cpu_user_s
            self.episodes.sys_s += row.cpu_sys_s
            self.episodes.minor_faults += row.minor_faults or 0
        if row.native_cpu_sys_s is not None:
            self.native_episodes.user_s += row.native_cpu_user_s or 0.0
            self.native_episodes.sys_s += row.native_cpu_sys_s
            self.native_episodes.minor_faults += row.native_minor_faults or 0
        if row.success and row.instructions is not None:
            self.instructions.setdefault((row.agent, row.task_ref), array("q")).append(row.instructions)
        # a counted row's twin, or a row run only natively
        judged = row.success and (row.instructions is not None or row.native_only)
        if judged and row.native_cpu_sys_s is not None and row.native_minor_faults is not None:
            self.native_sys_s.setdefault((row.agent, row.task_ref), array("d")).append(row.native_cpu_sys_s)
            self.native_faults.setdefault((row.agent, row.task_ref), array("q")).append(row.native_minor_faults)

    @property
    def count(self) -> int:
        return len(self.indices)

    def parts(self) -> dict[str, ProcessShare]:
        """The episode processes' share of the run's CPU (and their native twins', if any)."""
        found = {"episodes": self.episodes}
        if self.native_episodes != ProcessShare():
            found["native_episodes"] = self.native_episodes
        return found


def instruction_figures(index: SeriesIndex) -> list[InstructionFigures]:
    """Median, min and max instructions per episode of each (agent, task_ref), and the
    medians of their native twins' system time and minor faults."""
    figures = []
    for key, counts in index.instructions.items():
        sys_s, faults = index.native_sys_s.get(key), index.native_faults.get(key)
        figures.append(
            InstructionFigures(
                agent=key[0],
                task_ref=key[1],
                count=len(counts),
                median=statistics.median(counts),
                min=min(counts),
                max=max(counts),
                native_count=len(faults) if faults else 0,
                native_sys_ms_median=round(statistics.median(sys_s) * 1e3, 3) if sys_s else None,
                native_minor_faults_median=statistics.median(faults) if faults else None,
            )
        )
    return figures


def run_artifact_stats(root: Path) -> RunArtifactStats:
    count = total = 0
    if root.exists():
        for entry in os.scandir(root):
            if entry.name.endswith(".json") and entry.is_file():
                count += 1
                total += entry.stat().st_size
    return RunArtifactStats(
        root=str(root), file_count=count, total_bytes=total, avg_bytes=round(total / count, 2) if count else None
    )


def prune_run_artifacts(run_dir: RunDir, keep: KeepRuns, failed_run_ids: set[str]) -> None:
    """``--keep-runs``: bound what a long run leaves on disk, after it has been measured."""
    if keep == "all":
        return
    # os.scandir streams the folder; Path.glob lists it whole first (~0.75 MB at 5,000 episodes).
    try:
        entries = os.scandir(run_dir.runs_root)
    except FileNotFoundError:  # no episode ever placed an artifact
        return
    with entries:
        for entry in entries:
            if entry.name.endswith(".json") and (keep == "none" or entry.name[: -len(".json")] not in failed_run_ids):
                with contextlib.suppress(OSError):  # one an episode made immutable (chattr +i) stays
                    os.unlink(entry.path)


def system_samples(run_dir: RunDir, interval: float) -> tuple[SystemSamples, int | None]:
    """Fold the monitor's samples. Also returns the peak count of live episode processes."""
    count = 0
    cpu_sum = 0.0
    cpu_max = rss_peak = rss_start = total = available_min = procs_peak = None
    for sample in run_dir.iter_samples():
        count += 1
        cpu_sum += sample.cpu_percent
        cpu_max = max(cpu_max or 0.0, sample.cpu_percent)
        rss_peak = max(rss_peak or 0, sample.harness_rss_bytes)
        rss_start = sample.harness_rss_bytes if rss_start is None else rss_start
        total = sample.memory_total_bytes
        available_min = min(available_min or sample.memory_available_bytes, sample.memory_available_bytes)
        procs_peak = max(procs_peak or 0, sample.episode_processes)
    return (
        SystemSamples(
            available=count > 0,
            provider="psutil",
            cpu_percent=round(cpu_sum / count, 2) if count else None,
            process_rss_bytes=rss_peak,
            system_memory_total_bytes=total,
            system_memory_available_bytes=available_min,
            sample_count=count,
            interval_s=interval,
            cpu_percent_max=cpu_max,
            process_rss_bytes_start=rss_start,
        ),
        procs_peak,
    )


def _write_json_array(path: Path, items: Iterable[bytes]) -> None:
    """Write a JSON array one encoded element at a time, atomically (files.write_atomic_chunks)."""

    def chunks() -> Iterable[bytes]:
        first = True
        yield b"["
        for item in items:
            yield b"\n  " if first else b",\n  "
            yield item
            first = False
        yield b"\n]\n" if not first else b"]\n"

    write_atomic_chunks(path, chunks())


def _rows_in_order(run_dir: RunDir, index: SeriesIndex) -> Iterable[bytes]:
    with run_dir.series.open("rb") as fh:
        for position in index.in_episode_order():
            fh.seek(index.starts[position])
            yield fh.read(index.lengths[position]).rstrip(b"\n")


def _samples(run_dir: RunDir) -> Iterable[bytes]:
    encoder = msgspec.json.Encoder()
    for sample in run_dir.iter_samples():
        yield encoder.encode(sample)


class Publication(msgspec.Struct):
    stamp: str
    artifacts: dict[str, str]
    summary: Summary
    manifest: Manifest


def publish(
    run_dir: RunDir,
    manifest: Manifest,
    *,
    index: SeriesIndex,
    metrics_rows: list[dict[str, Any]],
    elapsed_s: float,
    harness_cpu_s: float,
    harness_peak_rss_bytes: int,
    workers_cpu_s: float,
    workers_instructions: int | None = None,
    workers_uncounted: int | None = None,
    parts: dict[str, ProcessShare] | None = None,
    episodes_this_attempt: int,
    integrity: Integrity | None = None,
) -> Publication:
    """Write the published artifacts for ``run_dir`` into its output directory."""
    out = run_dir.output_dir
    stamp = manifest.stamp
    samples_summary, procs_peak = system_samples(run_dir, manifest.settings.sample_interval)
    artifacts = run_artifact_stats(run_dir.runs_root)
    wall = distribution(index.wall)
    n = index.count
    own_cpu = harness_cpu_s + workers_cpu_s
    summary = Summary(
        summary=BatchSummary(
            total=n,
            passed=index.passed,
            failed=n - index.passed,
            workers=manifest.settings.workers,
            p50_wall_clock_s=wall.p50,
            p95_wall_clock_s=wall.p95,
        ),
        episodes=n,
        success_count=index.passed,
        failure_count=n - index.passed,
        max_wall_clock_s=wall.max,
        failure_reasons=dict(index.reasons.most_common()),
        run_artifacts=artifacts,
        system_samples=samples_summary,
        telemetry_verbosity=TelemetryVerbosity(
            artifact_bytes_total=index.artifact_bytes_total,
            artifact_bytes_avg=round(index.artifact_bytes_total / n, 2) if n else None,
            artifact_bytes_max=index.artifact_bytes_max if n else None,
            llm_trace_entries_total=index.llm_entries,
            llm_trace_entries_avg=round(index.llm_entries / n, 4) if n else None,
            prompt_bytes_total=index.prompt_bytes,
            completion_bytes_total=index.completion_bytes,
            tokens_used_total=index.tokens,
        ),
        stamp=stamp,
        status=manifest.status,
        elapsed_s=round(elapsed_s, 4),
        throughput_eps=round(episodes_this_attempt / elapsed_s, 3) if elapsed_s > 0 and episodes_this_attempt else None,
        timed_out_count=index.timed_out,
        wall_clock_s=wall,
        episode_s=distribution(index.episode_s),
        queue_s=distribution(index.queue_s),
        resources=ResourcePeaks(
            episode_max_rss_bytes=index.max_rss or None,
            episode_cpu_s_total=round(index.cpu_s, 4),
            harness_peak_rss_bytes=harness_peak_rss_bytes,
            harness_cpu_s=round(harness_cpu_s, 4),
            workers_cpu_s=round(workers_cpu_s, 4),
            harness_cpu_ms_per_episode=round(own_cpu * 1000 / episodes_this_attempt, 4) if episodes_this_attempt else None,
            peak_episode_processes=procs_peak,
            workers_instructions=workers_instructions,
            workers_uncounted=workers_uncounted,
            parts={name: share.rounded() for name, share in {**(parts or {}), **index.parts()}.items()},
        ),
        integrity=integrity or Integrity(),
        instructions=instruction_figures(index),
        timing_note=(TIMING_MIXED if index.native_only else TIMING_UNDER_VALGRIND) if manifest.settings.instructions else None,
        format_version=FORMAT_VERSION,
    )

    paths = {kind: artifact_path(out, kind, stamp) for kind in ARTIFACT_KINDS}
    manifest.artifact_set = list(ARTIFACT_KINDS) + (["artifacts"] if manifest.settings.compress else [])
    manifest.format_version = FORMAT_VERSION
    write_atomic(paths["summary"], _pretty(summary))
    write_atomic(paths["metrics"], _pretty(metrics_rows))
    _write_json_array(paths["series"], _rows_in_order(run_dir, index))
    _write_json_array(paths["samples"], _samples(run_dir))
    write_atomic(paths["manifest"], _pretty(manifest))
    run_dir.write_manifest(manifest)
    if manifest.settings.compress:
        paths["artifacts"] = artifact_path(out, "artifacts", stamp)
        bundle(paths["artifacts"], [paths[k] for k in ARTIFACT_KINDS])
    return Publication(stamp=stamp, artifacts={k: str(v) for k, v in paths.items()}, summary=summary, manifest=manifest)


def bundle(zip_path: Path, files: list[Path]) -> None:
    """A lossless zip of the published JSON files, byte for byte (written through a fresh
    temporary file and renamed, as every published file is)."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{zip_path.name}.", suffix=".tmp", dir=zip_path.parent)
    try:
        with open(fd, "wb") as raw, zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            for path in files:
                with path.open("rb") as src, archive.open(path.name, "w") as dst:
                    shutil.copyfileobj(src, dst)
        os.chmod(tmp, 0o644)
        os.replace(tmp, zip_path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
