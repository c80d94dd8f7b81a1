"""In-process stand-ins for the worker side of a run, so the orchestrator's scheduling,
timeouts, worker replacement and interrupts are tested without a process (as hyperfine's
``MockExecutor`` tests its scheduling without running commands).

:class:`FakeKeeper` stands in for ``launcher.ZygoteKeeper`` and hands out
:class:`FakeWorker`\\ s (for ``launcher.WorkerProcess``): exactly the surface
``orchestrator.Execution`` uses. What each episode does is a :data:`Behaviour` chosen per
episode index; the default succeeds, placing its artifact in the run as a real worker does.

Time is the :class:`FakeClock`'s: it moves only when an episode ends (by that episode's
``duration``), so ``queue_s`` and ``wall_clock_s`` are exact numbers, not measurements.
Synchronisation is by events and conditions, never by sleeping.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio

from tracecore_perf.models import ArtifactFacts, EpisodeJob, ProcessShare
from tracecore_perf.run.launcher import WorkerFailed
from tracecore_perf.run.protocol import CallDone, Done


class FakeClock:
    """Stands in for the ``time`` module in ``orchestrator``: ``perf_counter`` is virtual."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


class FakeStream:
    def __init__(self) -> None:
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True


Behaviour = Callable[["FakeWorker", EpisodeJob, dict[str, Any]], Awaitable[tuple[Done, bool]]]


def artifact(run_id: str, *, success: bool = True, failure_type: str | None = None, reason: str | None = None) -> ArtifactFacts:
    return ArtifactFacts(
        run_id=run_id,
        success=success,
        failure_type=failure_type,
        failure_reason=reason,
        file_bytes=120,
        artifact_bytes=100,
        llm_trace_entries=1,
        prompt_bytes=10,
        completion_bytes=20,
        tokens_used=30,
    )


def done(**fields: Any) -> Done:
    values: dict[str, Any] = {
        "returncode": 0,
        "killed": False,
        "cpu_user_s": 0.25,
        "cpu_sys_s": 0.125,
        "max_rss_bytes": 1_000_000,
        "output_bytes": 0,
        "leftover_processes": 0,
    }
    values.update(fields)
    return Done(**values)


async def succeed(worker: FakeWorker, job: EpisodeJob, kw: dict[str, Any]) -> tuple[Done, bool]:
    """A healthy episode: its artifact placed in the run (as the real worker does), a report."""
    run_id = f"run-{job.episode_index:04d}"
    (Path(kw["runs_dir"]) / f"{run_id}.json").write_text(json.dumps({"run_id": run_id}))
    result = {"completed": True, "episode_s": 0.5, "run_id": run_id}
    return done(result=result, artifact=artifact(run_id)), False


async def time_out(worker: FakeWorker, job: EpisodeJob, kw: dict[str, Any]) -> tuple[Done, bool]:
    """What ``WorkerProcess.run_episode`` returns for an episode killed at the timeout."""
    return done(returncode=-signal.SIGTERM, killed=True), True


async def crash(worker: FakeWorker, job: EpisodeJob, kw: dict[str, Any]) -> tuple[Done, bool]:
    return done(returncode=-signal.SIGKILL), False


async def bad_report(worker: FakeWorker, job: EpisodeJob, kw: dict[str, Any]) -> tuple[Done, bool]:
    return done(result={"completed": "yes", "episode_s": 0.1}), False


def fail_worker(message: str) -> Behaviour:
    async def behaviour(worker: FakeWorker, job: EpisodeJob, kw: dict[str, Any]) -> tuple[Done, bool]:
        raise WorkerFailed(message)

    return behaviour


class FakeWorker:
    def __init__(self, world: FakeKeeper, slot: int, pid: int) -> None:
        self.world = world
        self.slot = slot
        self.pid = pid
        self.stream = FakeStream()
        self.cpu_user_s = 0.0
        self.cpu_sys_s = 0.0
        self.minor_faults = 0
        self.episodes: list[int] = []
        self.killed = False
        self.closed = False

    def zygote_gone(self) -> bool:
        return False  # a fake worker's episodes never lose their zygote

    async def run_episode(self, job: EpisodeJob, **kw: Any) -> tuple[Done, bool]:
        assert not (self.killed or self.closed), "an episode sent to a dead worker"
        world = self.world
        self.episodes.append(job.episode_index)
        world.kwargs[job.episode_index] = kw
        epoch = world.full_epoch
        world.in_flight += 1
        world.started += 1
        world.max_in_flight = max(world.max_in_flight, world.in_flight)
        if world.in_flight >= world.workers:
            world.full_epoch += 1
        world.notify()
        try:
            if world.on_start is not None:
                await world.on_start(job)
            # hold every episode until the slots have been full while it was in flight (or
            # nothing more will start), so the batch really runs `workers` at a time
            await world.until(lambda: world.full_epoch > epoch or world.started >= world.total)
            behaviour = world.behaviours.get(job.episode_index, succeed)
            outcome = await behaviour(self, job, kw)
            world.clock.now += world.duration
            world.finished.append(job.episode_index)
            return outcome
        except anyio.get_cancelled_exc_class():
            world.aborted.append(job.episode_index)  # the real worker kills the episode here
            raise
        finally:
            world.in_flight -= 1
            world.notify()

    async def kill(self) -> None:
        self.killed = True

    async def close(self) -> None:
        self.closed = True
        self.cpu_user_s, self.cpu_sys_s, self.minor_faults = 0.5, 0.25, 100


class FakeZygote:
    def __init__(self, metrics_rows: list[dict]) -> None:
        self.process = SimpleNamespace(pid=999_999, returncode=None)
        self.metrics_rows = metrics_rows
        self.reaped = 0
        self.metrics_calls: list[tuple[Path, int]] = []

    async def reap(self) -> None:
        self.reaped += 1

    async def metrics(self, run_dir: Path, limit: int) -> CallDone:
        self.metrics_calls.append((run_dir, limit))
        return CallDone(returncode=0, result={"rows": self.metrics_rows})


class FakeKeeper:
    """The zygote keeper, and the world its fake workers share: who is in flight, what each
    episode does, and the clock."""

    def __init__(
        self,
        *,
        workers: int,
        total: int,
        behaviours: dict[int, Behaviour] | None = None,
        duration: float = 1.0,
        metrics_rows: list[dict] | None = None,
    ) -> None:
        self.workers = workers
        self.total = total  # jobs in the batch: the last ones need not wait for full slots
        self.behaviours = behaviours or {}
        self.duration = duration
        self.clock = FakeClock()
        self.zygote = FakeZygote(metrics_rows if metrics_rows is not None else [{"metric": "fake"}])
        self.spawned: list[FakeWorker] = []
        self.kwargs: dict[int, dict[str, Any]] = {}
        self.in_flight = self.started = self.max_in_flight = 0
        self.full_epoch = 0  # how many times the slots filled up
        self.finished: list[int] = []
        self.aborted: list[int] = []
        self.on_start: Callable[[EpisodeJob], Awaitable[None]] | None = None
        self.execution: Any = None  # the Execution under test, for hooks that act on it
        self.closed = False
        self._changed = anyio.Event()

    # --- the keeper's surface ----------------------------------------------------------
    async def spawn_worker(self, slot: int, replacing: bool = False) -> FakeWorker:
        await anyio.lowlevel.checkpoint()
        worker = FakeWorker(self, slot, pid=10_000 + len(self.spawned))
        self.spawned.append(worker)
        return worker

    async def current(self) -> FakeZygote:
        return self.zygote

    @property
    def cpu_s(self) -> float:
        return 1.0

    @property
    def share(self) -> ProcessShare:
        return ProcessShare(user_s=0.75, sys_s=0.25, minor_faults=10)

    async def close(self) -> None:
        self.closed = True

    async def counts_written(self) -> None:  # instruction mode only; the fakes count nothing
        await anyio.lowlevel.checkpoint()

    workers_instructions = workers_uncounted = None

    # --- synchronisation ---------------------------------------------------------------
    def notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await self._changed.wait()

    async def forever(self) -> None:
        """Block until cancelled."""
        await anyio.Event().wait()
