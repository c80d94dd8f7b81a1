"""The resource monitor: a psutil reading of host, harness and episode processes every
``interval`` seconds, sent to the writer as a :class:`Sample`.

psutil's CPU percentages are deltas since the previous call, so the counters are primed
when the monitor is created: the first sample is a real reading, not the 0.0 that a single
``cpu_percent(interval=None)`` returns.

Sampling is dense at the start and settles at ``interval``: the gap before each sample is a
tenth of the time run so far, at least ``MIN_GAP_S`` and at most ``interval``
(:func:`next_gap`). A run of a second or two (the 24-episode slice) gets ten-odd samples
instead of one or two, so its charts and trend checks have a series to look at; a long run
costs at most ~25 extra samples over its first ten seconds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import psutil
import structlog
from anyio.streams.memory import MemoryObjectSendStream

from tracecore_perf.errors import RunAborted
from tracecore_perf.models import EpisodeRow, Sample
from tracecore_perf.run.limits import LimitGuard

log = structlog.get_logger("tracecore_perf.run.monitor")

MIN_GAP_S = 0.1  # the densest sampling, at the very start
RAMP = 10  # the gap is the time run so far / RAMP until it reaches the interval


def next_gap(elapsed: float, interval: float) -> float:
    """Seconds to the next sample, ``elapsed`` seconds into the run: elapsed / RAMP, at least
    MIN_GAP_S, at most ``interval`` (a smaller ``interval`` than MIN_GAP_S wins)."""
    return min(interval, max(MIN_GAP_S, elapsed / RAMP))


class Progress:
    """Counters the episode tasks update and the monitor and console read."""

    def __init__(self) -> None:
        self.done = 0
        self.failed = 0


class Monitor:
    def __init__(
        self, worker_pids: Callable[[], list[int]], progress: Progress, t0: float, run_dir: Path, guard: LimitGuard | None = None
    ) -> None:
        self.guard = guard
        self.missed = 0  # samples that could not be taken (an episode broke a resource the reading needs)
        self.worker_pids = worker_pids
        self.run_dir = run_dir
        self.progress = progress
        self.t0 = t0
        self.harness = psutil.Process(os.getpid())
        self.harness.cpu_percent(None)  # prime
        psutil.cpu_percent(None)  # prime

    def sample(self) -> Sample:
        memory = psutil.virtual_memory()
        workers = set(self.worker_pids())
        workers_rss = episode_rss = episodes = 0
        # One walk of the process table per sample: everything below the harness is the
        # zygote, a worker, or an episode process (and whatever an episode started).
        for proc in self.harness.children(recursive=True):
            try:  # any of them may exit while we look
                rss = proc.memory_info().rss
                is_worker = proc.pid in workers or proc.ppid() == self.harness.pid
            except psutil.Error:
                continue
            if is_worker:
                workers_rss += rss
            else:
                episode_rss += rss
                episodes += 1
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = None
        return Sample(
            t_s=round(time.perf_counter() - self.t0, 4),
            cpu_percent=psutil.cpu_percent(None),
            memory_total_bytes=memory.total,
            memory_available_bytes=memory.available,
            harness_rss_bytes=self.harness.memory_info().rss,
            harness_cpu_percent=self.harness.cpu_percent(None),
            workers_rss_bytes=workers_rss,
            episode_processes=episodes,
            episode_rss_bytes=episode_rss,
            episodes_done=self.progress.done,
            episodes_failed=self.progress.failed,
            load_1m=load,
        )

    def try_sample(self) -> Sample | None:
        """A sample, or None (counted in ``missed``) when a resource the reading needs is
        broken: an episode may have left the harness no file descriptor to read /proc with."""
        try:
            return self.sample()
        except (OSError, psutil.Error) as exc:
            self.missed += 1
            log.warning("sample.missed", error=str(exc), missed=self.missed)
            return None

    async def run(self, send: MemoryObjectSendStream[EpisodeRow | Sample], interval: float) -> None:
        """Sample until cancelled, every :func:`next_gap` seconds (``interval`` once the run is
        ten intervals old). The first reading is one gap in, so that the primed CPU counters
        cover a real span."""
        started = time.perf_counter()
        while True:
            await anyio.sleep(next_gap(time.perf_counter() - started, interval))
            if self.guard is not None:
                self.guard.check()
            if not self.run_dir.is_dir():
                # Open files would go on accepting rows into a deleted directory: stop instead.
                raise RunAborted(f"the run directory disappeared: {self.run_dir}")
            sample = self.try_sample()
            if sample is None:
                continue
            try:
                await send.send(sample)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return  # the writer stopped on its own error (a full disk), which ends the run


SAMPLE_FIELDS = list(Sample.__struct_fields__)
