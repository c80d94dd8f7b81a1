"""The orchestrator's scheduling, in-process: fake workers (``tests/fakes.py``), a real run
directory and writer, a virtual clock. No process is started, so each test takes
milliseconds; what the real workers do is tested end to end by the slow tests."""

from __future__ import annotations

import errno
import signal
from pathlib import Path

import anyio
import pytest
from fakes import FakeKeeper, artifact, bad_report, crash, done, fail_worker, time_out

from tracecore_perf.models import EpisodeJob, EpisodeRow, ProcessShare
from tracecore_perf.run import orchestrator
from tracecore_perf.run.integrity import check_run
from tracecore_perf.run.orchestrator import Execution
from tracecore_perf.run.protocol import Done
from tracecore_perf.run.rundir import RunDir
from tracecore_perf.run.scenario import plan
from tracecore_perf.settings import RunSettings

TIMEOUT = 5.0


@pytest.fixture
def run_dir(tmp_path: Path) -> RunDir:
    rd = RunDir(tmp_path / "run-20260101T000000Z")
    rd.create()
    return rd


@pytest.fixture(autouse=True)
def no_sweep(monkeypatch: pytest.MonkeyPatch) -> list[frozenset[int]]:
    """The stray sweep kills every child of this process: in-process, it only records."""
    calls: list[frozenset[int]] = []
    monkeypatch.setattr(orchestrator, "sweep", lambda keep=frozenset(): calls.append(keep) or 0)
    return calls


def jobs(n: int) -> list[EpisodeJob]:
    return [EpisodeJob(episode_index=i, scenario_row=i % 2, agent=f"agent{i % 2}.py", task_ref="t@1", seed=i) for i in range(n)]


def execute(
    run_dir: RunDir,
    keeper: FakeKeeper,
    monkeypatch: pytest.MonkeyPatch,
    planned: list[EpisodeJob],
    native: FakeKeeper | None = None,
) -> tuple[Execution, list[EpisodeRow], list]:
    """Run the jobs through a real Execution (with ``native``, the keeper of the native
    twins, as in instruction mode); returns it, the rows written and the rows ``on_row`` saw."""
    monkeypatch.setattr(orchestrator, "time", keeper.clock)
    seen: list[EpisodeRow] = []
    options = {
        "output_cap": 1 << 20,
        "agents": {"agent0.py": "/abs/agent0.py"},
        "labels": {"agent0.py": "agent0.py"},
        "scratch_root": run_dir.path.parent / "scratch",
        "attempt": 1,
        "known_artifacts": {},
        "on_row": seen.append,
    }
    settings = RunSettings(workers=keeper.workers, timeout=TIMEOUT, isolation="forkserver", sample_interval=0.5)
    execution = keeper.execution = Execution(run_dir, keeper, settings, native=native, **options)
    anyio.run(execution.run, iter(planned), len(planned))
    assert execution.ledgers is not None
    rows = list(run_dir.iter_rows())
    return execution, rows, seen


def test_never_more_than_workers_at_once_and_one_row_per_job(run_dir, monkeypatch):
    keeper = FakeKeeper(workers=3, total=10)
    execution, rows, seen = execute(run_dir, keeper, monkeypatch, jobs(10))
    assert keeper.max_in_flight == 3
    assert sorted(r.episode_index for r in rows) == list(range(10))
    assert [r.episode_index for r in seen] == [r.episode_index for r in rows]
    assert all(r.success and r.error is None for r in rows), [r.error for r in rows]
    assert execution.progress.done == 10 and execution.progress.failed == 0
    assert len(keeper.spawned) == 3 and sorted(w.slot for w in keeper.spawned) == [0, 1, 2]
    assert sum(len(w.episodes) for w in keeper.spawned) == 10


def test_queue_s_is_the_wait_for_a_free_slot(run_dir, monkeypatch):
    """On the virtual clock each episode takes 1 s and time moves only when one ends: the first
    `workers` start at once without waiting; episode k after them starts only once k - workers + 1
    episodes have ended, and the first of them waited from the start for that."""
    workers = 2
    keeper = FakeKeeper(workers=workers, total=6)
    _, rows, _ = execute(run_dir, keeper, monkeypatch, jobs(6))
    by_index = {r.episode_index: r for r in rows}
    assert [(by_index[i].queue_s, by_index[i].started_s) for i in range(workers)] == [(0.0, 0.0)] * workers
    assert by_index[workers].queue_s == by_index[workers].started_s >= 1.0
    assert all(by_index[k].started_s >= k - workers + 1 for k in range(workers, 6))
    assert all(r.queue_s >= 0 and r.wall_clock_s >= 1.0 for r in rows)


def test_the_row_carries_the_job_the_artifact_and_the_kernels_accounting(run_dir, monkeypatch):
    keeper = FakeKeeper(workers=1, total=1)
    _, (row,), _ = execute(run_dir, keeper, monkeypatch, jobs(1))
    assert (row.episode, row.agent, row.task_ref, row.seed, row.scenario_row, row.attempt) == (1, "agent0.py", "t@1", 0, 0, 1)
    assert row.run_id == "run-0000" and row.artifact_bytes == 100 and row.tokens_used == 30
    assert (row.cpu_user_s, row.cpu_sys_s, row.episode_s, row.returncode) == (0.25, 0.125, 0.5, 0)
    sent = keeper.kwargs[0]
    assert sent["agent_path"] == "/abs/agent0.py" and sent["timeout"] == TIMEOUT
    assert sent["runs_dir"] == run_dir.runs_root and sent["log_path"] == run_dir.episode_log(0)


def test_a_timed_out_episode_gets_a_timeout_row_and_the_run_goes_on(run_dir, monkeypatch):
    keeper = FakeKeeper(workers=2, total=5, behaviours={2: time_out})
    execution, rows, _ = execute(run_dir, keeper, monkeypatch, jobs(5))
    (late,) = [r for r in rows if not r.success]
    assert late.episode_index == 2 and late.timed_out and late.failure_type == "timeout"
    assert late.error == f"timeout: episode exceeded the {TIMEOUT:g}s limit and was killed"
    assert late.run_id is None and late.returncode == -signal.SIGTERM
    assert len(rows) == 5 and execution.progress.failed == 1
    assert len(keeper.spawned) == 2  # a timeout costs the episode, not the worker


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [
        (crash, "crashed: episode process died before reporting, killed by signal SIGKILL"),
        (bad_report, "bad result: Expected `bool`, got `str` - at `$.completed`"),
    ],
)
def test_a_broken_episode_costs_only_its_row(run_dir, monkeypatch, behaviour, error):
    keeper = FakeKeeper(workers=2, total=4, behaviours={1: behaviour})
    _, rows, _ = execute(run_dir, keeper, monkeypatch, jobs(4))
    failed = [r for r in rows if not r.success]
    assert [(r.episode_index, r.error) for r in failed] == [(1, error)]
    assert not failed[0].timed_out and len(rows) == 4


def test_a_failed_worker_costs_its_episode_and_its_slot_gets_a_new_worker(run_dir, monkeypatch):
    keeper = FakeKeeper(workers=2, total=8, behaviours={0: fail_worker("worker 1 (pid 10001) closed its socket")})
    execution, rows, _ = execute(run_dir, keeper, monkeypatch, jobs(8))
    (failed,) = [r for r in rows if not r.success]
    assert failed.episode_index == 0 and failed.error == "worker failed: worker 1 (pid 10001) closed its socket"
    assert failed.returncode == -1 and failed.run_id is None and not failed.timed_out
    broken = next(w for w in keeper.spawned if 0 in w.episodes)
    assert broken.killed and broken.stream.closed and broken.episodes == [0]
    assert len(keeper.spawned) == 3
    replacement = keeper.spawned[-1]
    assert replacement.slot == broken.slot and replacement.episodes
    assert len(rows) == 8 and execution.progress.failed == 1
    # the broken worker is not closed again at the end; the live ones are
    assert not broken.closed and all(w.closed for w in keeper.spawned if w is not broken)


def test_after_the_batch_workers_and_zygote_are_closed_and_metrics_collected(run_dir, monkeypatch, no_sweep):
    keeper = FakeKeeper(workers=2, total=3, metrics_rows=[{"metric": "pass_rate", "value": 1.0}])
    execution, _, _ = execute(run_dir, keeper, monkeypatch, jobs(3))
    assert all(w.closed for w in keeper.spawned) and keeper.closed
    assert execution.worker_cpu_s == keeper.cpu_s + 2 * 0.75
    assert execution.metrics_rows == [{"metric": "pass_rate", "value": 1.0}]
    assert keeper.zygote.metrics_calls == [(run_dir.path, 3)] and keeper.zygote.reaped == 1
    assert no_sweep == [frozenset({keeper.zygote.process.pid})]
    assert execution.parts["workers"] == ProcessShare(user_s=1.0, sys_s=0.5, minor_faults=200)  # two closed workers
    assert execution.parts["zygote"] == keeper.share and "native_workers" not in execution.parts
    assert execution.artifact_check.clean and set(execution.artifacts) == {f"run-{i:04d}" for i in range(3)}
    assert execution.interrupted_by is None and execution.aborted is None


def test_the_writer_keeps_digests_the_evidence_check_accepts(run_dir, monkeypatch):
    keeper = FakeKeeper(workers=2, total=6)
    execution, rows, _ = execute(run_dir, keeper, monkeypatch, jobs(6))
    assert execution.ledgers is not None
    try:
        integrity = check_run(run_dir, execution.ledgers, execution.artifact_check)
    finally:
        execution.ledgers.close()
    assert integrity.clean and integrity.problems == []
    assert len(execution.ledgers.series.digests) == 6
    assert len(list(run_dir.iter_samples())) >= 1  # the closing sample at least


def test_jobs_from_the_planner_run_in_full(run_dir, monkeypatch):
    from tracecore_perf.models import ScenarioRow

    scenario = [ScenarioRow(agent="agent0.py", task_ref="t@1", seed=10), ScenarioRow(agent="agent1.py", task_ref="u@1")]
    planned = list(plan(scenario, 7, skip={3}))
    keeper = FakeKeeper(workers=3, total=len(planned))
    _, rows, _ = execute(run_dir, keeper, monkeypatch, planned)
    assert sorted(r.episode_index for r in rows) == [0, 1, 2, 4, 5, 6]
    assert {r.episode_index: r.seed for r in rows if r.agent == "agent0.py"} == {0: 10, 2: 12, 4: 14, 6: 16}


def test_an_interrupt_stops_launching_kills_in_flight_and_loses_no_counted_row(run_dir, monkeypatch):
    """Episodes 4 and 5 never end by themselves; when 5 starts, the interrupt comes (what
    ``_watch_signals`` does on SIGINT: cancel the launch scope)."""
    keeper = FakeKeeper(workers=2, total=10)

    async def on_start(job: EpisodeJob) -> None:
        if job.episode_index == 5:
            keeper.execution.interrupted_by = signal.SIGINT
            keeper.execution._launch_scope.cancel()
        if job.episode_index >= 4:
            await keeper.forever()

    keeper.on_start = on_start
    execution, rows, seen = execute(run_dir, keeper, monkeypatch, jobs(10))
    assert execution.interrupted_by == signal.SIGINT
    assert sorted(keeper.aborted) == [4, 5]  # in flight: killed, no row
    assert sorted(r.episode_index for r in rows) == sorted(keeper.finished) == [0, 1, 2, 3]
    assert execution.progress.done == len(rows) == len(seen) == 4  # every counted row is written
    assert keeper.started == 6  # nothing launched after the interrupt
    assert all(w.closed for w in keeper.spawned) and keeper.closed
    assert execution.metrics_rows == [] and keeper.zygote.metrics_calls == []  # no metrics for a stopped run


def test_a_real_sigint_goes_through_the_signal_watcher(run_dir, monkeypatch):
    """The same, from an actual SIGINT to this process, handled by ``_watch_signals``."""
    keeper = FakeKeeper(workers=2, total=6)

    async def on_start(job: EpisodeJob) -> None:
        if job.episode_index == 3:
            # the watcher's handler is installed before any episode starts; wait for it to be
            # sure a SIGINT can never reach pytest itself
            while signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                await anyio.lowlevel.checkpoint()
            signal.raise_signal(signal.SIGINT)
        if job.episode_index >= 2:
            await keeper.forever()

    keeper.on_start = on_start
    execution, rows, _ = execute(run_dir, keeper, monkeypatch, jobs(6))
    assert execution.interrupted_by == signal.SIGINT
    assert sorted(r.episode_index for r in rows) == [0, 1] and sorted(keeper.aborted) == [2, 3]
    assert execution.progress.done == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_a_full_disk_aborts_the_run_cleanly_while_episodes_still_finish(run_dir, monkeypatch):
    """The writer fails (ENOSPC) while other episodes are finishing: their rows can no longer
    be written, and that is the full disk's doing. The run stops with the disk's error
    (``aborted``), never with an error of the stream the dead writer closed."""
    from tracecore_perf.run import writer

    def full(self, line: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer.Ledger, "append", full)
    keeper = FakeKeeper(workers=4, total=40)
    execution, rows, _ = execute(run_dir, keeper, monkeypatch, jobs(40))
    assert execution.aborted is not None and "No space left on device" in execution.aborted
    assert rows == []


def test_a_bug_in_the_batch_is_raised_not_taken_for_a_stop(run_dir, monkeypatch):
    """Only a RunAborted stops a run as an abort; anything else raised inside the batch's task
    group (a bug of ours) goes on up in the exception group anyio wraps it in (on 3.10 the
    ``exceptiongroup`` backport's), with nothing but that bug in it."""
    from tracecore_perf.run import writer

    def broken(self, line: bytes) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(writer.Ledger, "append", broken)
    keeper = FakeKeeper(workers=2, total=4)
    with pytest.raises(BaseException) as raised:
        execute(run_dir, keeper, monkeypatch, jobs(4))
    leaves, error = [], raised.value
    stack = [error]
    while stack:
        error = stack.pop()
        if hasattr(error, "exceptions"):
            stack.extend(error.exceptions)
        else:
            leaves.append(error)
    assert leaves and all(isinstance(e, ZeroDivisionError) for e in leaves), leaves


async def native_twin(worker, job: EpisodeJob, kw: dict) -> tuple[Done, bool]:
    """A native twin: it places its artifact where it is told, as a real worker would."""
    run_id = f"twin-{job.episode_index:04d}"
    (Path(kw["runs_dir"]) / f"{run_id}.json").write_text("{}")
    result = {"completed": True, "episode_s": 0.01, "run_id": run_id}
    return done(result=result, artifact=artifact(run_id), cpu_user_s=0.01, cpu_sys_s=0.004, minor_faults=1200 + job.seed), False


def test_instruction_mode_runs_each_episode_again_natively_for_the_kernels_figures(run_dir, monkeypatch, no_sweep):
    """The row keeps the counted episode's own figures and gains its native twin's system time
    and faults; the twin's artifact is never the run's; both keepers are closed and the native
    workers' own cost is a part of its own."""
    keeper = FakeKeeper(workers=2, total=4)
    twins = FakeKeeper(workers=1, total=4, behaviours=dict.fromkeys(range(4), native_twin))
    execution, rows, _ = execute(run_dir, keeper, monkeypatch, jobs(4), native=twins)
    assert sorted((r.native_cpu_sys_s, r.native_minor_faults) for r in rows) == [(0.004, 1200 + i) for i in range(4)]
    assert all(r.cpu_sys_s == 0.125 and r.run_id == f"run-{r.episode_index:04d}" for r in rows)
    assert sorted(p.name for p in run_dir.runs_root.iterdir()) == [f"run-{i:04d}.json" for i in range(4)]
    native_runs = Path(twins.kwargs[0]["runs_dir"])
    assert native_runs != run_dir.runs_root and not list(native_runs.iterdir())  # each twin's artifact removed
    assert all(kw["strict_spec"] is False for kw in twins.kwargs.values())
    assert keeper.closed and twins.closed and all(w.closed for w in twins.spawned)
    assert execution.parts["native_workers"].minor_faults == 100 * len(twins.spawned)


def test_a_failing_twin_leaves_its_row_as_it_was(run_dir, monkeypatch):
    keeper = FakeKeeper(workers=1, total=3)
    twins = FakeKeeper(workers=1, total=3, behaviours={0: native_twin, 1: fail_worker("twin lost"), 2: native_twin})
    execution, rows, _ = execute(run_dir, keeper, monkeypatch, jobs(3), native=twins)
    by_index = {r.episode_index: r for r in rows}
    assert all(r.success for r in rows) and execution.aborted is None
    assert by_index[1].native_minor_faults is None and by_index[1].native_cpu_sys_s is None
    assert by_index[1].native_error == "its native twin's worker failed: twin lost" and by_index[0].native_error is None
    assert by_index[0].native_minor_faults == 1200 and by_index[2].native_minor_faults == 1202
    assert len(twins.spawned) == 2  # the failed twin worker was replaced


def test_an_episode_that_failed_gets_no_twin(run_dir, monkeypatch):
    keeper = FakeKeeper(workers=1, total=2, behaviours={0: crash})
    twins = FakeKeeper(workers=1, total=1, behaviours={1: native_twin})
    _, rows, _ = execute(run_dir, keeper, monkeypatch, jobs(2), native=twins)
    assert sorted(twins.kwargs) == [1]
    assert [r.native_minor_faults for r in sorted(rows, key=lambda r: r.episode_index)] == [None, 1201]


def test_an_interrupt_during_a_twin_still_writes_the_counted_row(run_dir, monkeypatch):
    """Episode 1 was counted; the interrupt lands while its native twin runs (and never ends by
    itself): the twin is killed, the counted row is written all the same, without the twin's
    figures, and nothing more is launched."""
    keeper = FakeKeeper(workers=1, total=4)
    twins = FakeKeeper(workers=1, total=4, behaviours=dict.fromkeys(range(4), native_twin))

    async def on_start(job: EpisodeJob) -> None:
        if job.episode_index == 1:
            keeper.execution.interrupted_by = signal.SIGINT
            keeper.execution._launch_scope.cancel()
            await twins.forever()

    twins.on_start = on_start
    execution, rows, seen = execute(run_dir, keeper, monkeypatch, jobs(4), native=twins)
    assert execution.interrupted_by == signal.SIGINT and twins.aborted == [1]
    assert [(r.episode_index, r.native_minor_faults, r.native_error) for r in rows] == [(0, 1200, None), (1, None, None)]
    assert execution.progress.done == len(seen) == 2 and keeper.started == 2
