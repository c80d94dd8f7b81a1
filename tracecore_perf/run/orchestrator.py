"""The orchestrator: one anyio task group runs the whole batch.

- launcher: a semaphore sized to the worker count; each episode a task that takes a free
  worker slot, runs one episode process on its worker under the per-episode timeout, and
  turns the outcome into an :class:`EpisodeRow`. A worker that dies or stops answering
  costs only the episode it held: that episode's row says so, and the slot gets a new
  worker (from a new zygote if the zygote is gone) before its next episode;
- monitor: a psutil :class:`Sample` every interval;
- writer: receives rows and samples on a memory object stream and appends each to disk;
- signals: the first SIGINT/SIGTERM stops launching and kills the episodes in flight; a
  second one exits at once.

Jobs come from a generator and a task is started only once a slot is free, so the harness
holds at most ``workers`` episodes in memory however long the run.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import anyio
import msgspec
import structlog
from anyio.streams.memory import MemoryObjectSendStream

from tracecore_perf.errors import TERMINATING, CodeChanged, RunAborted, terminating_code
from tracecore_perf.escape import terminal
from tracecore_perf.models import ChildResult, EpisodeJob, EpisodeRow, Integrity, ProcessShare, Sample
from tracecore_perf.run.episode.system import remove_tree
from tracecore_perf.run.integrity import check_artifacts
from tracecore_perf.run.launcher import WorkerFailed, WorkerProcess, ZygoteKeeper
from tracecore_perf.run.limits import LimitGuard
from tracecore_perf.run.monitor import Monitor, Progress
from tracecore_perf.run.protocol import Done
from tracecore_perf.run.rundir import RunDir
from tracecore_perf.run.seal import CodeSeal
from tracecore_perf.run.strays import sweep
from tracecore_perf.run.writer import Ledgers, open_ledgers, write_stream
from tracecore_perf.settings import RunSettings

if sys.version_info < (3, 11):  # Python 3.10: anyio raises the backport's groups
    from exceptiongroup import BaseExceptionGroup

log = structlog.get_logger("tracecore_perf.run.orchestrator")


@dataclass(frozen=True)
class BatchResult:
    """What one attempt's batch left for the evidence check and publication (``Execution.run``)."""

    episodes_done: int  # rows written by this attempt
    elapsed_s: float  # from the first launch to the last row
    aborted: str | None  # why the run could not go on (exit 3), or None
    interrupted_by: int | None  # the signal that stopped the batch, or None
    code_changed: tuple[str, ...]  # files episodes load that changed during the run (tainted)
    metrics_rows: tuple[dict, ...]  # TraceCore's metrics over the run's artifacts
    artifact_check: Integrity  # the run's artifacts against the digests their workers sent
    ledgers: Ledgers | None  # the series and samples, still open (None: never opened)
    worker_cpu_s: float  # the workers' own CPU, summed
    workers_instructions: int | None  # instruction mode: the workers' own instructions, summed
    workers_uncounted: int | None  # instruction mode: workers that wrote no count
    # what the zygote and the workers reported of themselves as they closed ("zygote",
    # "workers"; in instruction mode also "native_zygote", "native_workers")
    parts: dict[str, ProcessShare]

    @property
    def stopped_early(self) -> bool:
        return self.interrupted_by is not None or self.aborted is not None


class Slot:
    """One of the ``workers`` places an episode can run in, and the worker serving it
    (None until started, or after it failed)."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.worker: WorkerProcess | None = None
        self.native: WorkerProcess | None = None  # instruction mode: its worker of the native zygote


class Execution:
    """Runs the planned jobs of one attempt on a run directory."""

    def __init__(
        self,
        run_dir: RunDir,
        keeper: ZygoteKeeper,
        settings: RunSettings,
        *,
        output_cap: int,
        agents: dict[str, str],
        labels: dict[str, str],
        scratch_root: Path,
        attempt: int,
        known_artifacts: dict[str, bytes | None],
        on_row: Callable[[EpisodeRow], None] | None = None,
        guard: LimitGuard | None = None,
        seal: CodeSeal | None = None,
        native: ZygoteKeeper | None = None,
        scenario_rows: int = 0,
    ) -> None:
        """``settings``: the run's (its manifest's ``settings``); ``agents``: each
        scenario agent -> the file episodes load, ``labels``: -> the name artifacts record;
        ``known_artifacts``: what an earlier attempt placed (a resume); ``seal``: the code
        episodes load, stamped before any agent's code ran (no zygote or worker is started
        from it once it changed, and a change taints the run); ``native``: in instruction
        mode, a zygote of the same interpreter run natively, whose workers run each counted
        episode again for what its count cannot see (system time, page faults), and run the
        episodes not counted (past ``settings.counted_per_row`` of their scenario row, of
        ``scenario_rows`` rows: the plan cycles them). Closes both keepers."""
        self.run_dir = run_dir
        self.settings = settings
        self.workers = settings.workers
        self.timeout = settings.timeout
        self.output_cap = output_cap
        self.agents = agents
        self.labels = labels
        self.scratch_root = scratch_root
        self.attempt = attempt
        self.on_row = on_row
        # run id -> SHA-256 of the artifact its worker placed, for every episode whose artifact
        # the run holds, this attempt's and earlier ones' (the evidence check holds each file to it)
        self.artifacts = dict(known_artifacts)
        self.progress = Progress()
        self.interrupted_by: int | None = None
        self.aborted: str | None = None  # why the run could not go on (exit 3)
        self.code_changed: list[str] = []  # files episodes load that changed (the run stopped: tainted)
        self.guard = guard or LimitGuard()
        # episodes whose worker died with its zygote (which another episode may have killed):
        # run again once, alone, after the batch; those already run again
        self._lost: list[EpisodeJob] = []
        self._rerun: set[int] = set()
        self.metrics_rows: list[dict] = []
        self.artifact_check = Integrity()
        self.ledgers: Ledgers | None = None
        self.worker_cpu_s = 0.0
        self.elapsed_s = 0.0
        self._slots = [Slot(number) for number in range(self.workers)]
        self._idle: list[Slot] = list(self._slots)
        self._keeper = keeper  # started and validated by the caller; closed by us
        self._native = native
        self._scenario_rows = scenario_rows
        self.seal = seal
        for each in (keeper, native):
            if seal is not None and each is not None:
                each.seal = seal
        self._closed_worker_cpu_s = 0.0
        self._workers_share = ProcessShare()
        self._native_workers_share = ProcessShare()
        self.parts: dict[str, ProcessShare] = {}
        # a native twin's artifact goes here, never into the run, and is removed at once
        self._native_runs = scratch_root / "native" / ".agent_bench" / "runs"
        # instruction mode: the scenario rows whose profiles (explain's evidence) are kept or
        # being kept, one episode per row (``_profiling``)
        self._profiled_rows: set[int] = set()
        self._profiles_id: list[int] | None = None  # profiles/'s device and inode, once made
        self._native_started: set[int] = set()  # slots that had a native worker (_spawn_native)
        self._launch_scope: anyio.CancelScope | None = None
        self.t0 = time.perf_counter()

    @property
    def workers_instructions(self) -> int | None:
        """Instruction mode: the workers' own instructions, summed (the keeper reads them as it closes)."""
        return self._keeper.workers_instructions

    @property
    def workers_uncounted(self) -> int | None:
        return self._keeper.workers_uncounted

    # --- the batch ---------------------------------------------------------------------
    async def run(self, jobs: Iterator[EpisodeJob], metrics_limit: int) -> BatchResult:
        """Run the jobs, check the run's artifacts, then TraceCore's metrics over the run
        (its ``metrics_limit`` newest artifacts; 0: none, the interpreter's TraceCore has no
        metrics pipeline), and say what came of it.
        Always closes the workers and the zygote. A run that cannot go on says why in
        ``aborted`` instead of raising."""
        await self._run(jobs, metrics_limit)
        return BatchResult(
            episodes_done=self.progress.done,
            elapsed_s=self.elapsed_s,
            aborted=self.aborted,
            interrupted_by=self.interrupted_by,
            code_changed=tuple(self.code_changed),
            metrics_rows=tuple(self.metrics_rows),
            artifact_check=self.artifact_check,
            ledgers=self.ledgers,
            worker_cpu_s=self.worker_cpu_s,
            workers_instructions=self.workers_instructions,
            workers_uncounted=self.workers_uncounted,
            parts=self.parts,
        )

    async def _run(self, jobs: Iterator[EpisodeJob], metrics_limit: int) -> None:
        self.t0 = time.perf_counter()
        try:
            self.ledgers = open_ledgers(self.run_dir.series, self.run_dir.samples)
            await self._batch(jobs)
        except (RunAborted, BaseExceptionGroup) as error:  # except* RunAborted, as Python 3.10 says it
            stops, rest = (error, None) if isinstance(error, RunAborted) else error.split(RunAborted)
            if stops is None:
                raise
            reason = _leaf(stops)
            if isinstance(reason, CodeChanged):  # not a stop to resume from: the run is tainted
                self.code_changed = reason.files
                log.error("run.code_changed", error=str(reason))
            else:
                self.aborted = str(reason)
                log.error("run.aborted", error=self.aborted)
            if rest is not None:
                raise rest from None
        try:
            await self._keeper.counts_written()  # before anything of the run is killed
            await self._kill_strays()
            stopped_early = self.interrupted_by is not None or self.aborted is not None
            if self.aborted is None:
                self.artifact_check = check_artifacts(self.run_dir, self.artifacts, interrupted=stopped_early)
            self.guard.check()  # what follows opens files: with the harness's own limits
            if self.seal is not None and not self.code_changed:
                self.code_changed = self.seal.changed()
            # TraceCore's metrics read only sealed artifacts, with TraceCore's code as it was
            if not stopped_early and not self.code_changed and metrics_limit > 0:
                await self._collect_metrics(metrics_limit)
        finally:
            with anyio.CancelScope(shield=True):
                await self._keeper.close()
                if self._native is not None:
                    await self._native.close()
            self.worker_cpu_s = self._keeper.cpu_s + self._closed_worker_cpu_s
            self.parts = {"zygote": self._keeper.share.rounded(), "workers": self._workers_share.rounded()}
            if self._native is not None:
                self.parts["native_zygote"] = self._native.share.rounded()
                self.parts["native_workers"] = self._native_workers_share.rounded()

    async def _batch(self, jobs: Iterator[EpisodeJob]) -> None:
        assert self.ledgers is not None
        send, receive = anyio.create_memory_object_stream[EpisodeRow | Sample](max_buffer_size=256)
        async with anyio.create_task_group() as tg:
            tg.start_soon(write_stream, receive, self.ledgers, self.guard.check)
            async with send, anyio.create_task_group() as background:
                background.start_soon(self._watch_signals)
                monitor = Monitor(self._worker_pids, self.progress, self.t0, self.run_dir.path, self.guard)
                background.start_soon(self._sample, monitor, send.clone())
                try:
                    await self._start_workers()
                    await self._launch_all(jobs, send)
                    self.elapsed_s = time.perf_counter() - self.t0
                    if (last := monitor.try_sample()) is not None:
                        await deliver(send, last)
                finally:
                    self.elapsed_s = self.elapsed_s or time.perf_counter() - self.t0
                    with anyio.CancelScope(shield=True):
                        await self._close_workers()
                    background.cancel_scope.cancel()

    def _worker_pids(self) -> list[int]:
        return [worker.pid for slot in self._slots for worker in (slot.worker, slot.native) if worker is not None]

    async def _start_workers(self) -> None:
        async def start(slot: Slot) -> None:
            slot.worker = await self._keeper.spawn_worker(slot.number)

        async with anyio.create_task_group() as tg:
            for slot in self._slots:
                tg.start_soon(start, slot)
        log.debug("workers.ready", workers=self.workers, isolation=self.settings.isolation)

    async def _launch_all(self, jobs: Iterator[EpisodeJob], send: MemoryObjectSendStream) -> None:
        slots = anyio.Semaphore(self.workers)
        with anyio.CancelScope() as self._launch_scope:
            async with anyio.create_task_group() as episodes:
                for job in jobs:
                    queued_at = time.perf_counter()
                    await slots.acquire()
                    episodes.start_soon(self._run_one, job, queued_at, slots, send)
            # Episodes lost with their zygote, one at a time: whichever of them killed it can
            # only take itself down this time.
            while self._lost:
                job = self._lost.pop(0)
                self._rerun.add(job.episode_index)
                log.warning("episode.rerun", episode_index=job.episode_index, reason="its worker died with the zygote")
                await self._settle_zygote()
                await slots.acquire()
                await self._run_one(job, time.perf_counter(), slots, send)

    def counted(self, job: EpisodeJob) -> bool:
        """Instruction mode: whether ``job`` is counted under Valgrind, as the first
        ``counted_per_row`` episodes of each scenario row are (episode ``i`` runs row
        ``i % rows``: it is that row's ``i // rows``-th); the others run only natively."""
        per_row, rows = self.settings.counted_per_row, self._scenario_rows
        return self._native is None or per_row <= 0 or rows <= 0 or job.episode_index // rows < per_row

    async def _run_one(self, job: EpisodeJob, queued_at: float, slots: anyio.Semaphore, send: MemoryObjectSendStream) -> None:
        if not self.counted(job):
            await self._run_native_only(job, queued_at, slots, send)
            return
        slot = self._idle.pop()  # the semaphore guarantees one is idle
        native: Done | str | None = None
        interrupted: BaseException | None = None
        # bound before the try: a cancellation inside run_episode reaches the finally below
        outcome: Done | None = None
        timed_out, failure = False, None
        profile = self._profiling(job)
        python_profile: str | None = None
        try:
            if slot.worker is not None and slot.worker.zygote_gone():  # it died with its zygote
                with anyio.CancelScope(shield=True):
                    await slot.worker.kill()
                    await slot.worker.stream.aclose()
                slot.worker = None
            if slot.worker is None:  # its last worker failed: a new one, before the clock starts
                slot.worker = await self._keeper.spawn_worker(slot.number, replacing=True)
            started = time.perf_counter()
            try:
                outcome, timed_out = await slot.worker.run_episode(
                    job,
                    runs_dir=self.run_dir.runs_root,
                    log_path=self.run_dir.episode_log(job.episode_index),
                    strict_spec=self.settings.strict_spec,
                    profile_path=self.run_dir.profiles / profile if profile else None,
                    profile_dir=self._profiles_id if profile else None,
                    **self._episode_options(job),
                )
                failure = None
            except WorkerFailed as exc:
                log.error("worker.failed", slot=slot.number, episode_index=job.episode_index, error=str(exc))
                outcome, timed_out, failure = None, False, f"worker failed: {exc}"
                lost_with_zygote = slot.worker.zygote_gone()
                with anyio.CancelScope(shield=True):
                    await slot.worker.kill()  # the episode dies with it (PR_SET_PDEATHSIG)
                    await slot.worker.stream.aclose()
                slot.worker = None
                if lost_with_zygote and job.episode_index not in self._rerun:
                    self._lost.append(job)  # no row yet: it runs again, alone, after the batch
                    return
            finished = time.perf_counter()
            if self._native is not None and _completed(outcome):
                try:
                    native = await self._run_native(slot, job)
                    if profile and outcome.profile_sha256 and isinstance(native, Done):
                        python_profile = await self._trace_python(slot, job, profile)
                except anyio.get_cancelled_exc_class() as stop:
                    interrupted = stop  # raised again once the counted episode's row is written
        finally:
            if profile and (outcome is None or outcome.profile_sha256 is None):
                self._profiled_rows.discard(job.scenario_row)  # none kept: the row's next episode keeps one
                if outcome is not None and outcome.instructions is not None:  # counted, yet its profile not kept
                    log.warning("episode.profile_not_kept", episode_index=job.episode_index, error="its worker could not keep it")
            self._idle.append(slot)
            slots.release()
            self.guard.check()  # an episode may have lowered the harness's limits: before the row is written
        try:
            profiles = (profile, python_profile) if profile and outcome and outcome.profile_sha256 else None
            await self._record(job, outcome, timed_out, failure, (queued_at, started, finished), native, send, profiles)
        finally:
            if interrupted is not None:
                raise interrupted

    async def _run_native_only(
        self, job: EpisodeJob, queued_at: float, slots: anyio.Semaphore, send: MemoryObjectSendStream
    ) -> None:
        """Instruction mode, an episode not counted (past its row's ``counted_per_row``): run
        natively, in the slot's worker of the native zygote, as the run's own episode (its
        artifact into the run, its log, the spec check), for the time figures; its row says
        so (``native_only``) and carries its figures as native ones too."""
        assert self._native is not None
        slot = self._idle.pop()  # the semaphore guarantees one is idle
        outcome: Done | None = None
        try:
            if slot.native is not None and slot.native.zygote_gone():
                with anyio.CancelScope(shield=True):
                    await slot.native.kill()
                    await slot.native.stream.aclose()
                slot.native = None
            if slot.native is None:
                slot.native = await self._spawn_native(slot)
            started = time.perf_counter()
            try:
                outcome, timed_out = await slot.native.run_episode(
                    job,
                    runs_dir=self.run_dir.runs_root,
                    log_path=self.run_dir.episode_log(job.episode_index),
                    strict_spec=self.settings.strict_spec,
                    **self._episode_options(job),
                )
                failure = None
            except WorkerFailed as exc:
                log.error("worker.failed", slot=slot.number, episode_index=job.episode_index, error=str(exc), native=True)
                outcome, timed_out, failure = None, False, f"worker failed: {exc}"
                lost_with_zygote = slot.native.zygote_gone()
                with anyio.CancelScope(shield=True):
                    await slot.native.kill()
                    await slot.native.stream.aclose()
                slot.native = None
                if lost_with_zygote and job.episode_index not in self._rerun:
                    self._lost.append(job)  # no row yet: it runs again, alone, after the batch
                    return
            finished = time.perf_counter()
        finally:
            self._idle.append(slot)
            slots.release()
            self.guard.check()
        await self._record(job, outcome, timed_out, failure, (queued_at, started, finished), outcome, send, native_only=True)

    async def _record(
        self,
        job: EpisodeJob,
        outcome: Done | None,
        timed_out: bool,
        failure: str | None,
        times: tuple[float, float, float],
        native: Done | str | None,
        send: MemoryObjectSendStream,
        profiles: tuple[str, str | None] | None = None,
        *,
        native_only: bool = False,
    ) -> None:
        """The episode's row, written (``times``: queued, started, finished), and what follows from it."""
        if outcome is not None and outcome.host_fault is not None:
            # The host kept the episode from being recorded (a full disk, a lost permission, the
            # output folder gone): no row, which would be a failure the agent never made. The run
            # stops as an interrupt does, and --resume runs the episode again.
            self._stop(f"episode {job.episode_index + 1} could not be recorded: {terminal(outcome.host_fault)}")
            return
        row = self._row(job, outcome, timed_out, failure, *times, native, native_only=native_only)
        if profiles is not None and outcome is not None:
            profile, python_profile = profiles
            row.profile, row.profile_sha256 = profile, outcome.profile_sha256
            if python_profile is not None:
                row.python_profile, row.python_profile_sha256 = python_profile.split(" ", 1)
        # A row counted is a row written: an interrupt arriving now must not drop it.
        with anyio.CancelScope(shield=True):
            if not await deliver(send, row):
                return
        if row.run_id:
            self.artifacts[row.run_id] = row.artifact_digest
        self.progress.done += 1
        self.progress.failed += not row.success
        if not row.success:
            log.warning("episode.failed", episode_index=row.episode_index, error=row.error)
        if self.on_row is not None:
            self.on_row(row)
        if self.guard.stuck and self.aborted is None:
            # Stop as an interrupt does (its row, and every row before, are written first):
            # a fresh process, --resume, has the limits back and goes on past this episode.
            self._stop(
                f"an episode lowered the harness's own limits ({', '.join(self.guard.stuck)}) below what it can raise "
                "again (that takes CAP_SYS_RESOURCE)"
            )

    def _episode_options(self, job: EpisodeJob) -> dict:
        """What every run of ``job``'s episode takes, counted or its native twin: the file it
        loads and the name it records, the timeout, scratch, output cap and limits."""
        return {
            "agent_path": self.agents.get(job.agent, job.agent),
            "agent_label": self.labels.get(job.agent, job.agent),
            "timeout": self.timeout,
            "scratch_root": self.scratch_root,
            "output_cap": self.output_cap,
            "memory_limit": self.settings.memory_limit,
            "sandbox": self.settings.sandbox,
            "single_process": self.settings.instructions,
        }

    def _profiling(self, job: EpisodeJob) -> str | None:
        """Instruction mode: the name this episode's callgrind profile is kept under (in the
        run's ``profiles/``, for ``explain``) when it is the first of its scenario row to be
        counted this attempt; None for the others (one profile per row: counts repeat to
        ±0.02%, and a profile is ~0.5 MB)."""
        if self._native is None or job.scenario_row in self._profiled_rows:
            return None
        if self._profiles_id is None:
            try:
                self.run_dir.profiles.mkdir(exist_ok=True)
                facts = os.lstat(self.run_dir.profiles)
            except OSError as exc:  # the host's (a full disk, the folder gone): the count stands without it
                log.warning("episode.profile_not_kept", episode_index=job.episode_index, error=str(exc))
                return None
            if not stat.S_ISDIR(facts.st_mode):  # a link an episode put there: nothing is written through it
                log.warning("episode.profile_not_kept", episode_index=job.episode_index, error="profiles/ is not a folder")
                return None
            self._profiles_id = [facts.st_dev, facts.st_ino]
        self._profiled_rows.add(job.scenario_row)
        return f"episode-{job.episode_index:06d}-a{self.attempt}.callgrind"

    async def _trace_python(self, slot: Slot, job: EpisodeJob, profile: str) -> str | None:
        """The profiled episode once more, natively and traced (episode/pyprofile.py): the
        bytecodes each of its Python functions executed, per call stack, kept beside its
        callgrind profile. Returns ``"name sha256"``, or None when the replay kept nothing
        (the row's counted figures stand; explain names C functions alone for it)."""
        name = profile.removesuffix(".callgrind") + ".python.folded"
        path = self.run_dir.profiles / name
        replay = await self._run_native(slot, job, profile_path=path, profile_dir=self._profiles_id, trace_python=True)
        if not isinstance(replay, Done) or replay.profile_sha256 is None:
            why = replay if isinstance(replay, str) else "it kept no stacks"
            why = why.replace("native twin", "traced replay")
            log.warning("episode.python_profile_failed", episode_index=job.episode_index, error=why)
            with contextlib.suppress(OSError):
                path.unlink()  # nothing no row names is left in the run
            return None
        return f"{name} {replay.profile_sha256}"

    async def _spawn_native(self, slot: Slot) -> WorkerProcess:
        """The slot's worker of the native zygote: its first, or one replacing a worker that
        failed, which is not started once the code the episodes load has changed (as for
        the counted ones: native episodes run the same agents)."""
        assert self._native is not None
        self._native_runs.mkdir(parents=True, exist_ok=True)
        replacing = slot.number in self._native_started
        self._native_started.add(slot.number)
        return await self._native.spawn_worker(slot.number, replacing=replacing)

    async def _run_native(self, slot: Slot, job: EpisodeJob, **replay) -> Done | str:
        """Instruction mode: the episode again, natively, in the slot's worker of the native
        zygote, for the kernel's figures a count under Valgrind cannot give (system time,
        minor page faults). TraceCore's episodes are deterministic, so it does the counted
        episode's work. Its artifact is not the run's: placed in a scratch folder and removed.
        A twin that fails leaves the row's native figures empty, says why (the row's
        ``native_error``, which ``compare`` warns about: an agent that fails only natively
        would blind the kernel check), and the row is otherwise as it was."""
        assert self._native is not None
        try:
            if slot.native is None:
                slot.native = await self._spawn_native(slot)
            outcome, timed_out = await slot.native.run_episode(
                job,
                runs_dir=self._native_runs,
                log_path=self._native_runs.parent / "episodes.log",
                strict_spec=False,
                **self._episode_options(job),
                **replay,
            )
        except CodeChanged:
            raise  # the run stops, tainted, as for its counted episodes
        except (WorkerFailed, RunAborted) as exc:
            log.warning("episode.native_failed", episode_index=job.episode_index, error=str(exc))
            if slot.native is not None:
                with anyio.CancelScope(shield=True):
                    await slot.native.kill()
                    await slot.native.stream.aclose()
                slot.native = None
            return one_line(f"its native twin's worker failed: {exc}") or "its native twin's worker failed"
        if outcome.artifact is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._native_runs / f"{outcome.artifact.run_id}.json")
        if timed_out:
            return f"its native twin ran past the {self.timeout:g} s timeout"
        if not _completed(outcome):
            return f"its native twin did not finish a run ({exit_status_text(outcome.returncode)})"
        return outcome

    def _stop(self, reason: str) -> None:
        """Stop the run as an interrupt does (exit 3): no episode is launched any more, those
        in flight are killed and get no row; the first reason is the one the run gives."""
        if self.aborted is None:
            self.aborted = reason
            log.error("run.aborted", error=reason)
        if self._launch_scope is not None:
            self._launch_scope.cancel()

    async def _settle_zygote(self) -> None:
        """Before an episode runs again alone: a round trip with the zygote. The episode before
        may have sent it a SIGKILL that has not landed yet (a loaded host); a process with a
        SIGKILL pending runs no more of its own code, so a zygote that answers is not dying, and
        one that does not is replaced before the episode's worker is chosen."""
        with contextlib.suppress(WorkerFailed):  # then marked unusable: the next worker comes from a new zygote
            await (await self._keeper.current()).reap()

    def _row(
        self,
        job: EpisodeJob,
        outcome: Done | None,
        timed_out: bool,
        failure: str | None,
        queued_at: float,
        started: float,
        finished: float,
        native: Done | str | None = None,
        *,
        native_only: bool = False,
    ) -> EpisodeRow:
        result, bad_result = _reported(outcome)
        twin = native if isinstance(native, Done) else None
        limit = self.settings.memory_limit
        error = one_line(failure or describe_failure(outcome, result, bad_result, timed_out, self.timeout, limit))
        artifact = outcome.artifact if outcome else None
        return EpisodeRow(
            episode=job.episode_index + 1,
            episode_index=job.episode_index,
            agent=job.agent,
            task_ref=job.task_ref,
            seed=job.seed,
            success=error is None,
            wall_clock_s=round(finished - started, 6),
            error=error,
            artifact_bytes=artifact.artifact_bytes if artifact else 0,
            llm_trace_entries=artifact.llm_trace_entries if artifact else 0,
            prompt_bytes=artifact.prompt_bytes if artifact else 0,
            completion_bytes=artifact.completion_bytes if artifact else 0,
            tokens_used=artifact.tokens_used if artifact else 0,
            episode_s=round(result.episode_s, 6) if result else None,
            queue_s=round(started - queued_at, 6),
            started_s=round(started - self.t0, 6),
            cpu_user_s=round(outcome.cpu_user_s, 6) if outcome else 0.0,
            cpu_sys_s=round(outcome.cpu_sys_s, 6) if outcome else 0.0,
            max_rss_bytes=outcome.max_rss_bytes if outcome else 0,
            returncode=outcome.returncode if outcome else -1,
            timed_out=timed_out,
            scenario_row=job.scenario_row,
            # only an artifact the worker verified and placed in the run is this row's
            run_id=artifact.run_id if artifact else None,
            failure_type=(artifact.failure_type if artifact else None) or ("timeout" if timed_out else None),
            output_bytes=outcome.output_bytes if outcome else 0,
            attempt=self.attempt,
            instructions=outcome.instructions if outcome else None,
            artifact_sha256=artifact.sha256 if artifact else None,
            minor_faults=outcome.minor_faults if outcome else None,
            native_cpu_user_s=round(twin.cpu_user_s, 6) if twin else None,
            native_cpu_sys_s=round(twin.cpu_sys_s, 6) if twin else None,
            native_minor_faults=twin.minor_faults if twin else None,
            native_error=native if isinstance(native, str) else None,
            native_only=native_only,
        )

    # --- the end of the batch ----------------------------------------------------------
    async def _collect_metrics(self, limit: int) -> None:
        """TraceCore's metrics pipeline, run by the episode interpreter in the run dir (in
        instruction mode by its native zygote, the same interpreter and sealed code: nothing
        of it is counted, and under Valgrind it took ~50 times as long)."""
        try:
            zygote = await (self._native or self._keeper).current()
            outcome = await zygote.metrics(self.run_dir.path, limit)
        except (WorkerFailed, RunAborted) as exc:
            log.error("metrics.failed", error=str(exc))
            return
        if outcome.returncode != 0 or outcome.result is None:
            log.error("metrics.failed", returncode=outcome.returncode, error=outcome.result_error)
            return
        rows = outcome.result.get("rows", [])
        self.metrics_rows = rows if isinstance(rows, list) else []

    async def _kill_strays(self) -> None:
        """The workers are closed: whatever of an episode's is still running (re-parented to
        the zygote, or to the harness when its zygote died) is killed before the evidence is
        checked, so nothing is left to change it afterwards."""
        zygote = self._keeper.zygote
        if zygote is not None:
            with contextlib.suppress(WorkerFailed):
                await zygote.reap()
        ours = [each.zygote for each in (self._keeper, self._native) if each is not None and each.zygote is not None]
        sweep(frozenset(z.process.pid for z in ours))  # the zygotes are ours to close

    async def _close_workers(self) -> None:
        async def close(worker: WorkerProcess) -> None:
            await worker.close()
            self._closed_worker_cpu_s += worker.cpu_user_s + worker.cpu_sys_s
            self._workers_share = self._workers_share.plus(ProcessShare.of(worker))

        async def close_native(worker: WorkerProcess) -> None:
            await worker.close()
            self._native_workers_share = self._native_workers_share.plus(ProcessShare.of(worker))

        async with anyio.create_task_group() as tg:
            for slot in self._slots:
                if slot.worker is not None:
                    tg.start_soon(close, slot.worker)
                if slot.native is not None:
                    tg.start_soon(close_native, slot.native)

    async def _sample(self, monitor: Monitor, send: MemoryObjectSendStream) -> None:
        async with send:
            await monitor.run(send, self.settings.sample_interval)

    async def _watch_signals(self) -> None:
        # The event loop puts the default handlers back when the receiver closes; what was
        # there before (the CLI's SIGTERM -> errors.Terminated) must hold after the batch too.
        # SIGHUP (a closed terminal) is SIGTERM here as everywhere (errors.TERMINATING): 143.
        watched = (signal.SIGINT, *TERMINATING)
        previous = {sig: signal.getsignal(sig) for sig in watched}
        try:
            with anyio.open_signal_receiver(*watched) as signals:
                async for signum in signals:
                    if self.interrupted_by is not None:
                        log.warning("interrupt.again", signal=signal.Signals(signum).name)
                        self._exit_now(signum)
                    self.interrupted_by = terminating_code(signum) - 128
                    log.warning("interrupt", signal=signal.Signals(signum).name, action="stop launching, kill episodes in flight")
                    if self._launch_scope is not None:
                        self._launch_scope.cancel()
        finally:
            if threading.current_thread() is threading.main_thread():
                for sig, handler in previous.items():
                    if handler is not None:
                        signal.signal(sig, handler)

    def _exit_now(self, signum: int) -> NoReturn:
        """A second Ctrl-C: leave at once. Every row written is on disk and the manifest says
        the run is running, so ``--resume`` finishes it; the line says how. The zygote is
        killed (its workers die with it, killing their episodes; the workers with it die with us,
        their sockets closed) and the scratch directories go, as far as they can at once."""
        zygote = self._keeper.zygote
        if zygote is not None:
            with contextlib.suppress(OSError):
                os.kill(zygote.process.pid, signal.SIGKILL)
        for _ in range(20):  # an episode still dying may write into its folder a moment longer
            remove_tree(self.scratch_root)
            if not os.path.lexists(self.scratch_root):
                break
            time.sleep(0.05)
        line = f"tracecore-perf: interrupted again; to finish the run: {resume_hint(str(self.run_dir.path))}\n"
        with contextlib.suppress(OSError):
            sys.stderr.flush()
            os.write(2, line.encode(errors="replace"))
        os._exit(terminating_code(signum))


def _default_resume_hint(run_dir: str) -> str:
    return shlex.join([sys.executable, "-m", "tracecore_perf", "--resume", run_dir])


# The command that finishes a run, for the line a second Ctrl-C prints (the CLI sets it to its
# own, which keeps the flags given that --resume accepts).
resume_hint: Callable[[str], str] = _default_resume_hint


async def deliver(send: MemoryObjectSendStream, item: EpisodeRow | Sample) -> bool:
    """Hand a row or a sample to the writer; False when the writer has stopped. It stops only
    on its own error (a full disk: ``RunAborted``, which is what ends the run), so a closed
    stream here is that error's echo, not an error of its own."""
    try:
        await send.send(item)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        return False
    return True


def _leaf(error: BaseException) -> BaseException:
    """The first real exception inside (possibly nested) exception groups."""
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def _completed(outcome: Done | None) -> bool:
    """The episode process ran to its end and reported a finished run."""
    if outcome is None or outcome.returncode != 0 or outcome.killed:
        return False
    return (outcome.result or {}).get("completed") is True


def _reported(outcome: Done | None) -> tuple[ChildResult | None, str | None]:
    """The episode's own report, checked against its types; or why it is unusable."""
    if outcome is None or outcome.result is None:
        return None, None
    try:
        return msgspec.convert(outcome.result, ChildResult), None
    except msgspec.ValidationError as exc:
        return None, f"bad result: {exc}"


def describe_failure(
    outcome: Done | None,
    result: ChildResult | None,
    bad_result: str | None,
    timed_out: bool,
    timeout: float,
    memory_limit: int | None = None,
) -> str | None:
    """The row's ``error``: None for a successful episode, else one line saying why not.
    Success needs all the harness observed to agree: the process exited 0, its report is
    well formed, and TraceCore's artifact for the reported run id exists and says success."""
    if timed_out:
        return f"timeout: episode exceeded the {timeout:g}s limit and was killed"
    if outcome is None:
        return "worker failed"
    if bad_result or outcome.result_error:
        return bad_result or outcome.result_error
    over = _over_memory_limit(outcome, result, memory_limit)
    if over:
        return over
    if result is None:
        return f"crashed: episode process died before reporting, {exit_status_text(outcome.returncode)}"
    if not result.completed:
        return result.error or "episode raised"
    if outcome.returncode != 0:
        ended = exit_status_text(outcome.returncode)
        return f"unverified: the episode reported a finished run, but its process ended with {ended}"
    if outcome.artifact is None:
        return f"unverified: {outcome.artifact_error or 'no TraceCore artifact for the reported run'}"
    if result.spec_errors:
        return "strict-spec: " + "; ".join(result.spec_errors[:3])
    artifact = outcome.artifact
    if not artifact.success:
        return f"{artifact.failure_type or 'failure'}: {artifact.failure_reason or 'unsuccessful run'}"
    if outcome.count_error:  # --instructions: a success whose count is no figure is no success
        return f"uncounted: {outcome.count_error}"
    return None


def _over_memory_limit(outcome: Done, result: ChildResult | None, memory_limit: int | None) -> str | None:
    """The error of an episode that ran out of its ``--memory-limit``: Python raised
    MemoryError, or the process died by a signal (an allocation failing in C code, or the
    OOM killer) with its peak memory near the limit."""
    if not memory_limit:
        return None
    from tracecore_perf.units import format_size

    error = (result.error or "") if result is not None and not result.completed else ""
    # ENOMEM: a mapping refused; a thread whose stack could not be mapped
    if error.startswith("MemoryError") or "[Errno 12]" in error or "can't start new thread" in error:
        how = error
    elif result is None and outcome.returncode < 0 and outcome.max_rss_bytes >= 0.8 * memory_limit:
        how = exit_status_text(outcome.returncode)
    else:
        return None
    return f"memory limit: the episode needed more than its {format_size(memory_limit)} (--memory-limit; {how})"


ERROR_CAP = 1000  # characters of a row's error


def one_line(error: str | None) -> str | None:
    """A row's error as one printable line: what an episode raised may hold newlines and
    terminal escapes (a forged console line); they are shown escaped (``escape.terminal``),
    and the whole is capped. Each output escapes it again for its own sink."""
    if error is None:
        return None
    text = terminal(error)
    return text if len(text) <= ERROR_CAP else text[: ERROR_CAP - 1] + "…"


def exit_status_text(returncode: int) -> str:
    """How a process ended, from its return code (negative: the signal that killed it)."""
    if returncode < 0:
        try:
            return f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"
