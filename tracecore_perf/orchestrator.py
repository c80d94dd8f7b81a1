"""The orchestrator: one anyio task group runs the whole batch.

- launcher: a semaphore sized to the worker count; each episode a task that takes a free
  worker process, runs one episode process on it under the per-episode timeout, and turns
  the outcome into an :class:`EpisodeRow`;
- monitor: a psutil :class:`Sample` every interval;
- writer: receives rows and samples on a memory object stream and appends each to disk;
- signals: the first SIGINT/SIGTERM stops launching and kills the episodes in flight; a
  second one exits at once.

Jobs come from a generator and a task is started only once a slot is free, so the harness
holds at most ``workers`` episodes in memory however long the run.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator

import anyio
import structlog
from anyio.streams.memory import MemoryObjectSendStream

from tracecore_perf.errors import RunAborted
from tracecore_perf.launcher import WorkerFailed, WorkerProcess, Zygote
from tracecore_perf.models import EpisodeJob, EpisodeOutcome, EpisodeRow, IsolationMode, Sample
from tracecore_perf.monitor import Monitor, Progress
from tracecore_perf.publish import set_aside_orphans
from tracecore_perf.rundir import RunDir
from tracecore_perf.writer import write_stream

log = structlog.get_logger("tracecore_perf.orchestrator")


class Execution:
    """Runs the planned jobs of one attempt on a run directory."""

    def __init__(
        self,
        run_dir: RunDir,
        zygote: Zygote,
        *,
        workers: int,
        timeout: float,
        strict_spec: bool,
        isolation: IsolationMode,
        sample_interval: float,
        output_cap: int,
        agents: dict[str, str],
        attempt: int,
        known_run_ids: set[str],
        on_row: Callable[[EpisodeRow], None] | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.workers = workers
        self.timeout = timeout
        self.strict_spec = strict_spec
        self.isolation = isolation
        self.sample_interval = sample_interval
        self.output_cap = output_cap
        self.agents = agents
        self.attempt = attempt
        self.on_row = on_row
        # run ids of every episode with a row, this attempt's and earlier ones'
        self.run_ids = set(known_run_ids)
        self.progress = Progress()
        self.interrupted_by: int | None = None
        self.metrics_rows: list[dict] = []
        self.worker_cpu_s = 0.0
        self.elapsed_s = 0.0
        self._idle: list[WorkerProcess] = []
        self._all: list[WorkerProcess] = []
        self._zygote = zygote  # started and validated by the caller; closed by us
        self._launch_scope: anyio.CancelScope | None = None
        self.t0 = time.perf_counter()

    # --- the batch ---------------------------------------------------------------------
    async def run(self, jobs: Iterator[EpisodeJob], metrics_limit: int) -> None:
        """Run the jobs, then TraceCore's metrics over the run; always closes the zygote."""
        self.t0 = time.perf_counter()
        send, receive = anyio.create_memory_object_stream[EpisodeRow | Sample](max_buffer_size=256)
        async with anyio.create_task_group() as tg:
            tg.start_soon(write_stream, receive, self.run_dir.series, self.run_dir.samples)
            async with send, anyio.create_task_group() as background:
                background.start_soon(self._watch_signals)
                monitor = Monitor(lambda: [w.pid for w in self._all], self.progress, self.t0, self.run_dir.path)
                background.start_soon(self._sample, monitor, send.clone())
                try:
                    await self._start_workers()
                    await self._launch_all(jobs, send)
                    self.elapsed_s = time.perf_counter() - self.t0
                    await send.send(monitor.sample())
                    if self.interrupted_by is None:
                        await self._collect_metrics(metrics_limit)
                finally:
                    self.elapsed_s = self.elapsed_s or time.perf_counter() - self.t0
                    with anyio.CancelScope(shield=True):
                        await self._close_workers()
                    background.cancel_scope.cancel()

    async def _start_workers(self) -> None:
        async def start(slot: int) -> None:
            worker = await self._zygote.spawn_worker(slot)
            self._all.append(worker)
            self._idle.append(worker)

        async with anyio.create_task_group() as tg:
            for slot in range(self.workers):
                tg.start_soon(start, slot)
        log.debug("workers.ready", workers=self.workers, isolation=self.isolation)

    async def _launch_all(self, jobs: Iterator[EpisodeJob], send: MemoryObjectSendStream) -> None:
        slots = anyio.Semaphore(self.workers)
        with anyio.CancelScope() as self._launch_scope:
            async with anyio.create_task_group() as episodes:
                for job in jobs:
                    queued_at = time.perf_counter()
                    await slots.acquire()
                    episodes.start_soon(self._run_one, job, queued_at, slots, send)

    async def _run_one(self, job: EpisodeJob, queued_at: float, slots: anyio.Semaphore, send: MemoryObjectSendStream) -> None:
        worker = self._idle.pop()
        started = time.perf_counter()
        try:
            try:
                outcome, timed_out = await worker.run_episode(
                    job,
                    agent_path=self.agents.get(job.agent, job.agent),
                    timeout=self.timeout,
                    cwd=self.run_dir.path,
                    log_path=self.run_dir.episode_log(job.episode_index),
                    strict_spec=self.strict_spec,
                    output_cap=self.output_cap,
                )
            except WorkerFailed as exc:
                log.error("worker.failed", slot=worker.slot, episode_index=job.episode_index, error=str(exc))
                worker = await self._replace(worker)
                outcome, timed_out = None, False
                failure = f"worker failed: {exc}"
            else:
                failure = None
            finished = time.perf_counter()
            self._idle.append(worker)
        finally:
            slots.release()
        row = self._row(job, outcome, timed_out, failure, queued_at, started, finished)
        if row.run_id:
            self.run_ids.add(row.run_id)
        self.progress.done += 1
        self.progress.failed += not row.success
        if not row.success:
            log.warning("episode.failed", episode_index=row.episode_index, error=row.error)
        if self.on_row is not None:
            self.on_row(row)
        await send.send(row)

    async def _replace(self, worker: WorkerProcess) -> WorkerProcess:
        await worker.kill()
        self._all.remove(worker)
        try:
            fresh = await self._zygote.spawn_worker(worker.slot)
        except (OSError, WorkerFailed) as exc:
            raise RunAborted(f"cannot restart worker {worker.slot}: {exc}") from exc
        self._all.append(fresh)
        return fresh

    def _row(
        self,
        job: EpisodeJob,
        outcome: EpisodeOutcome | None,
        timed_out: bool,
        failure: str | None,
        queued_at: float,
        started: float,
        finished: float,
    ) -> EpisodeRow:
        result = outcome.result if outcome else None
        error = failure or describe_failure(outcome, timed_out, self.timeout)
        return EpisodeRow(
            episode=job.episode_index + 1,
            episode_index=job.episode_index,
            agent=job.agent,
            task_ref=job.task_ref,
            seed=job.seed,
            success=error is None,
            wall_clock_s=round(finished - started, 6),
            error=error,
            artifact_bytes=result.artifact_bytes if result else 0,
            llm_trace_entries=result.llm_trace_entries if result else 0,
            prompt_bytes=result.prompt_bytes if result else 0,
            completion_bytes=result.completion_bytes if result else 0,
            tokens_used=result.tokens_used if result else 0,
            episode_s=round(result.episode_s, 6) if result else None,
            queue_s=round(started - queued_at, 6),
            started_s=round(started - self.t0, 6),
            cpu_user_s=round(outcome.cpu_user_s, 6) if outcome else 0.0,
            cpu_sys_s=round(outcome.cpu_sys_s, 6) if outcome else 0.0,
            max_rss_bytes=outcome.max_rss_bytes if outcome else 0,
            returncode=outcome.returncode if outcome else -1,
            timed_out=timed_out,
            scenario_row=job.scenario_row,
            run_id=result.run_id if result else None,
            failure_type=(result.failure_type if result else None) or ("timeout" if timed_out else None),
            output_bytes=outcome.output_bytes if outcome else 0,
            attempt=self.attempt,
        )

    # --- the end of the batch ----------------------------------------------------------
    async def _collect_metrics(self, limit: int) -> None:
        """TraceCore's metrics pipeline, run by the episode interpreter in the run dir."""
        moved = set_aside_orphans(self.run_dir, self.run_ids)
        if moved:
            log.info("artifacts.orphaned", count=moved, reason="episodes killed in flight by an interruption")
        outcome = await self._zygote.metrics(self.run_dir.path, limit)
        if outcome.returncode != 0 or outcome.result is None:
            log.error("metrics.failed", returncode=outcome.returncode, error=outcome.result_error)
            return
        self.metrics_rows = outcome.result.get("rows", [])

    async def _close_workers(self) -> None:
        async with anyio.create_task_group() as tg:
            for worker in list(self._all):
                tg.start_soon(worker.close)
        await self._zygote.close()
        self.worker_cpu_s = self._zygote.cpu_user_s + self._zygote.cpu_sys_s
        self.worker_cpu_s += sum(w.cpu_user_s + w.cpu_sys_s for w in self._all)

    async def _sample(self, monitor: Monitor, send: MemoryObjectSendStream) -> None:
        async with send:
            await monitor.run(send, self.sample_interval)

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                if self.interrupted_by is not None:
                    log.warning("interrupt.again", signal=signal.Signals(signum).name)
                    os._exit(128 + signum)  # workers die with us (PR_SET_PDEATHSIG)
                self.interrupted_by = signum
                log.warning("interrupt", signal=signal.Signals(signum).name, action="stop launching, kill episodes in flight")
                if self._launch_scope is not None:
                    self._launch_scope.cancel()


def describe_failure(outcome: EpisodeOutcome | None, timed_out: bool, timeout: float) -> str | None:
    """The row's ``error``: None for a successful episode, else one line saying why not."""
    if timed_out:
        return f"timeout: episode exceeded the {timeout:g}s limit and was killed"
    if outcome is None:
        return "worker failed"
    result = outcome.result
    if result is None:
        if outcome.returncode < 0:
            try:
                name = signal.Signals(-outcome.returncode).name
            except ValueError:
                name = str(-outcome.returncode)
            how = f"killed by signal {name}"
        else:
            how = f"exit code {outcome.returncode}"
        detail = f" ({outcome.result_error})" if outcome.result_error else ""
        return f"crashed: episode process died before reporting, {how}{detail}"
    if not result.completed:
        return result.error or "episode raised"
    if result.spec_errors:
        return "strict-spec: " + "; ".join(result.spec_errors[:3])
    if not result.success:
        return f"{result.failure_type or 'failure'}: {result.failure_reason or 'unsuccessful run'}"
    return None
