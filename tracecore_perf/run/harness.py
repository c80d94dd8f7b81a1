"""A run from start to finish: validate, lay out the run directory, execute, publish.

``start`` begins a new run; ``resume`` finishes an interrupted one from its run directory.
Everything that can be wrong with the input is found by ``validate`` before anything is
written or any episode starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import signal
import tempfile
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import msgspec
import structlog

from tracecore_perf import __version__, defaults
from tracecore_perf.errors import ExitCode, UsageError
from tracecore_perf.models import (
    ARTIFACT_KINDS,
    AttemptRecord,
    EpisodeEnvironment,
    HostContext,
    InstructionCounting,
    Integrity,
    Interpreter,
    Manifest,
    ProcessShare,
    ScenarioRow,
    artifact_path,
)
from tracecore_perf.published import recorded
from tracecore_perf.run import vanished
from tracecore_perf.run.agent_check import check_agent_file
from tracecore_perf.run.checks import check_memory_limit, check_settings, check_workers
from tracecore_perf.run.console import ProgressBar, ProgressLines
from tracecore_perf.run.episode.system import remove_tree
from tracecore_perf.run.hostinfo import BusyProbe, host_context, machine_id
from tracecore_perf.run.integrity import check_agreement, check_artifacts, check_run, set_aside_planted
from tracecore_perf.run.launcher import WorkerFailed, ZygoteKeeper, ZygoteProcess
from tracecore_perf.run.limits import LimitGuard
from tracecore_perf.run.logs import add_run_log
from tracecore_perf.run.monitor import SAMPLE_FIELDS
from tracecore_perf.run.orchestrator import BatchResult, Execution
from tracecore_perf.run.publish import Publication, SeriesIndex, prune_run_artifacts, publish
from tracecore_perf.run.rundir import LOCK, MANIFEST, RunDir, new_stamp, utc_now
from tracecore_perf.run.scenario import plan
from tracecore_perf.run.seal import CodeSeal
from tracecore_perf.run.seal import describe as describe_change
from tracecore_perf.run.spawn import HASH_SEED, SpawnedZygote, valgrind_version
from tracecore_perf.run.strays import sweep
from tracecore_perf.settings import IsolationMode, RunSettings

log = structlog.get_logger("tracecore_perf.run.harness")


class RunOptions(msgspec.Struct, kw_only=True):
    """A new run: its settings (the interpreter and isolation may be left to ``start``,
    which takes this process's own), where it goes and the rows it runs."""

    settings: RunSettings
    output_dir: str
    scenario: list[ScenarioRow]
    output_cap: int = defaults.OUTPUT_CAP_BYTES  # bytes of each episode's output kept (not recorded)
    # where the scenario's agent paths are looked up first, as TraceCore's loader looks them up
    # in its working directory (None: this process's; `continuous`: each revision's own tree)
    agents_from: str | None = None
    stamp_suffix: int = 0  # a matrix cell's number: its stamp's suffix (rundir.new_stamp)


class Validated(msgspec.Struct):
    interpreter: Interpreter
    agents: dict[str, str]  # as given -> the absolute path episodes load
    labels: dict[str, str]  # as given -> the name TraceCore's artifacts record
    seal: CodeSeal  # the code episodes load, stamped before any agent's code ran


class Outcome(msgspec.Struct):
    exit_code: int
    publication: Publication | None
    run_dir: str
    stopped: str | None = None  # why the run had to stop (exit 3), for the one line on stderr
    already_published: bool = False  # a --resume of a run published to the end: nothing was done


# A run whose manifest says one of these was published to the end; any other (running,
# interrupted) with every row written still has its publication to finish (--resume).
PUBLISHED = ("complete", "resumed", "tainted", "failed")


async def _start_zygote(
    python: str,
    isolation: IsolationMode,
    scenario: list[ScenarioRow],
    spawned: SpawnedZygote | None = None,
    instructions: bool = False,
) -> ZygoteKeeper:
    # The zygote warms each task and agent file once, whatever the seed: one row per (agent,
    # task), not the scenario's every row (10^5 rows of one task took 55 s of warming)
    distinct: dict[tuple[str, str], ScenarioRow] = {}
    for row in scenario:
        distinct.setdefault((row.agent, row.task_ref), row)
    warm = [msgspec.to_builtins(row) for row in distinct.values()]
    keeper = ZygoteKeeper(python, isolation, warm, instructions)
    try:
        await keeper.start(spawned)
    except WorkerFailed as exc:
        with anyio.CancelScope(shield=True):
            await keeper.close()
        where = " under valgrind (--instructions)" if instructions else ""
        raise UsageError(f"{python} cannot run TraceCore episodes{where}: {exc}") from None
    return keeper


async def validate(
    zygote: ZygoteProcess,
    scenario: list[ScenarioRow],
    settings: RunSettings,
    agents_from: str | None = None,
    hide: tuple[str | os.PathLike, ...] = (),
    native: ZygoteProcess | None = None,
) -> Validated:
    """Resolve every agent (from ``agents_from``, default the working directory, then
    TraceCore's own) and task ref with the interpreter that will run the episodes
    (``settings.python``), check that its TraceCore has what the settings use, and (with
    ``sandbox``) that episodes can be sandboxed here; then load each agent file, confined
    as its episodes will be (``agent_check``; ``hide``: what a sandboxed check must not
    see, the output folder). ``native``: in instruction mode, a zygote of the same interpreter
    run natively, which answers the probe (~50 times faster than under Valgrind); the zygote
    under Valgrind then only shows that its episodes are counted and kept to one process.
    Raises UsageError naming the first problem; writes nothing."""
    python = settings.python
    cwd = agents_from or os.getcwd()

    async def probe(agents: list[str], task_refs: list[str], asked: ZygoteProcess = zygote, **options: bool) -> dict:
        try:
            answer = await asked.probe(cwd, agents, task_refs, **options)
        except WorkerFailed as exc:
            raise UsageError(f"{python} could not check the scenario: {exc}") from None
        if answer.returncode != 0 or answer.result is None:
            detail = answer.result_error or zygote.startup_error()
            raise UsageError(f"{python} cannot load TraceCore (agent_bench) or the scenario's agents: {detail}")
        return answer.result

    agent_refs, task_refs = sorted({row.agent for row in scenario}), sorted({row.task_ref for row in scenario})
    if native is not None and settings.instructions:
        result = await probe(agent_refs, task_refs, native, sandbox=settings.sandbox)
        result["single_process_error"] = (await probe([], [], single_process=True, light=True)).get("single_process_error")
    else:
        result = await probe(agent_refs, task_refs, sandbox=settings.sandbox, single_process=settings.instructions)
    for agent, verdict in result["agents"].items():
        if not verdict["ok"]:
            raise UsageError(f"agent not found: {agent}: {verdict['error']}")
    agents = {agent: verdict["resolved"] for agent, verdict in result["agents"].items()}
    for ref, verdict in result["tasks"].items():
        if not verdict["ok"]:
            raise UsageError(f"bad task ref {ref!r}: {verdict['error']}")
    if result.get("sandbox_error"):
        raise UsageError(result["sandbox_error"])
    if result.get("single_process_error"):
        raise UsageError(result["single_process_error"])
    _check_tracecore_release(python, result["tracecore_version"])
    lacks = dict(result.get("lacks") or {})
    if settings.strict_spec and "spec_check" in lacks:
        raise UsageError(
            f"--strict-spec: TraceCore {result['tracecore_version']} of {python} cannot check artifacts "
            f"({lacks['spec_check']}); run without --strict-spec"
        )
    if zygote.callgrind_dir is not None and not _counted_besides(zygote, zygote.callgrind_dir):
        raise UsageError(
            f"--instructions: {python} does not run under valgrind, so no episode would be counted "
            "(a script that starts the interpreter? give the interpreter itself)"
        )
    # The code episodes load, stamped before any agent's module runs (the next probe loads
    # them): what an agent changes as it is imported is a change to the sealed code.
    tracecore_packages = result.get("tracecore_packages") or [result.get("tracecore_dir", "")]
    seal = CodeSeal(agents.values(), tracecore_packages, result.get("site_dirs") or [], result.get("loaded_packages") or [])
    await _check_agent_files(agents, settings, hide)
    return Validated(
        interpreter=Interpreter(
            executable=result["executable"],
            python_version=result["python_version"],
            tracecore_version=result["tracecore_version"],
            python_build=result.get("python_build", ""),
            tracecore_dir=result.get("tracecore_dir", ""),
            site_dirs=result.get("site_dirs") or [],
            tracecore_packages=result.get("tracecore_packages") or [],
            loaded_packages=result.get("loaded_packages") or [],
            lacks=sorted(lacks),
            environment=msgspec.convert(result["environment"], EpisodeEnvironment) if result.get("environment") else None,
        ),
        agents=agents,
        labels={agent: verdict.get("label", agent) for agent, verdict in result["agents"].items()},
        seal=seal,
    )


async def _check_agent_files(agents: dict[str, str], settings: RunSettings, hide: tuple[str | os.PathLike, ...]) -> None:
    """Load every agent file, each in a process of its own (``agent_check``), a few at a time
    (about 0.1 s each, mostly the interpreter's start); the first problem in the scenario's
    order is raised, naming its agent."""
    assert settings.python is not None
    problems: dict[str, UsageError] = {}
    slots = anyio.CapacityLimiter(max(os.cpu_count() or 1, 1))

    async def check(agent: str, resolved: str) -> None:
        async with slots:
            try:
                await check_agent_file(
                    settings.python, agent, resolved, sandbox=settings.sandbox, single_process=settings.instructions,
                    hidden=[str(path) for path in hide],
                )  # fmt: skip
            except UsageError as exc:
                problems[agent] = exc

    async with anyio.create_task_group() as group:
        for agent, resolved in agents.items():
            group.start_soon(check, agent, resolved)
    for agent in agents:
        if agent in problems:
            raise problems[agent]


def _check_tracecore_release(python: str, version: str) -> None:
    """Refuse a TraceCore older than the oldest release the harness runs (a version it cannot
    read, such as a checkout's, is taken as it is)."""
    parts = []
    for part in version.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    if len(parts) >= 2 and tuple(parts) < defaults.OLDEST_TRACECORE:
        oldest = ".".join(map(str, defaults.OLDEST_TRACECORE))
        raise UsageError(f"{python} has TraceCore {version}; episodes need TraceCore {oldest} or newer")


def _counted_besides(zygote: ZygoteProcess, callgrind_dir: str) -> bool:
    """Whether callgrind counted a process of the zygote's other than the zygote itself: the
    probe runs in a child of the zygote, counted as it exits, unless the interpreter runs
    natively (a script that execs Python: valgrind counts the script and lets the exec'd
    interpreter go)."""
    own = f"callgrind.out.{zygote.process.pid}"
    return any(path.name != own for path in Path(callgrind_dir).glob("callgrind.out.*"))


def with_defaults(settings: RunSettings) -> RunSettings:
    """``settings`` with the interpreter and isolation this machine defaults to filled in."""
    from tracecore_perf.run.spawn import default_isolation, default_python

    # a relative interpreter path is taken from here: episodes and checks run in other folders
    python = os.path.abspath(settings.python) if settings.python else default_python()
    return msgspec.structs.replace(settings, python=python, isolation=settings.isolation or default_isolation())


def preflight(
    scenario: list[ScenarioRow],
    settings: RunSettings,
    output_dir: Path,
    agents_from: str | None = None,
    *,
    input_checked: bool = False,
) -> Validated:
    """All of a run's input checks, standalone: for callers that validate several runs
    before starting any (``ab`` checks both interpreters first, a matrix every cell), and
    then start each with ``input_checked=True``."""
    settings = with_defaults(settings)
    if not input_checked:
        check_settings(settings, output_dir)

    async def main() -> Validated:
        keeper = await _start_zygote(settings.python, settings.isolation, scenario, instructions=settings.instructions)
        try:
            return await validate(await keeper.current(), scenario, settings, agents_from, hide=(output_dir,))
        finally:
            with anyio.CancelScope(shield=True):
                await keeper.close()

    return anyio.run(main)


# --- the two ways an attempt finds its run directory ------------------------------------------


@dataclass(frozen=True)
class OpenedRun:
    """The run an attempt works on: its directory, its manifest (which names the agent paths
    episodes load) and the code episodes load, sealed before any agent's code ran."""

    run_dir: RunDir
    manifest: Manifest
    seal: CodeSeal


class NewRun:
    """A new run: validated, then its run directory made with its manifest in it."""

    def __init__(self, options: RunOptions, settings: RunSettings, busy: BusyProbe) -> None:
        self.options = options
        self.settings = settings
        self.rows = options.scenario  # what the zygote warms: the rows as given
        self.done: SeriesIndex | None = None  # no rows yet
        self.busy = busy  # watching the host since the zygote started
        self.run_dir: RunDir | None = None  # once it exists with its manifest: resumable from there

    async def open(self, zygote: ZygoteProcess, native: ZygoteProcess | None = None) -> OpenedRun:
        options, settings = self.options, self.settings
        output_dir = Path(options.output_dir)
        checked = await validate(zygote, options.scenario, settings, options.agents_from, hide=(output_dir,), native=native)
        ours = (zygote.process.pid,) + ((native.process.pid,) if native is not None else ())
        host = host_context(self.busy, own_processes=ours)
        if not host.quiet and settings.instructions:  # what is judged, the counts and faults, it does not move
            log.info("host.busy", reason=host.quiet_reason, advice="instruction counts and page faults do not move with it")
        elif not host.quiet:
            log.warning("host.busy", reason=host.quiet_reason, advice="figures from a busy host are noisy")
        output_dir.mkdir(parents=True, exist_ok=True)
        stamp = new_stamp(output_dir, first_suffix=options.stamp_suffix)
        run_dir = RunDir(output_dir / f"run-{stamp}")
        manifest = _new_manifest(settings, options.scenario, checked, host, stamp, run_dir)
        # The run directory appears with its manifest in it (RunDir.create_with), and a signal
        # waits until it has: the run is then resumable, however the harness stops after.
        with _signals_held():
            run_dir.create_with(manifest)
            self.run_dir = run_dir
        return OpenedRun(run_dir, manifest, checked.seal)


class ResumedRun:
    """An interrupted run: validated again (what the episodes load, resolved when the run
    began, wherever we are now) and its manifest brought up to date."""

    def __init__(self, run_dir: RunDir, manifest: Manifest, settings: RunSettings, done: SeriesIndex) -> None:
        self.run_dir: RunDir | None = run_dir  # it exists: resumable whatever happens
        self.manifest = manifest
        self.settings = settings
        self.done = done
        # what the zygote warms and validation loads: each row's agent as episodes load it
        self.rows = [
            ScenarioRow(agent=manifest.agents.get(r.agent, r.agent), task_ref=r.task_ref, seed=r.seed) for r in manifest.scenario
        ]

    async def open(self, zygote: ZygoteProcess, native: ZygoteProcess | None = None) -> OpenedRun:
        run_dir, manifest = self.run_dir, self.manifest
        assert run_dir is not None
        checked = await validate(zygote, self.rows, self.settings, hide=(run_dir.path.parent,), native=native)
        found = manifest.interpreter
        found.tracecore_dir = found.tracecore_dir or checked.interpreter.tracecore_dir
        found.site_dirs = found.site_dirs or checked.interpreter.site_dirs
        found.tracecore_packages = checked.interpreter.tracecore_packages
        found.loaded_packages = checked.interpreter.loaded_packages
        found.lacks = checked.interpreter.lacks
        found.environment = found.environment or checked.interpreter.environment
        # Artifacts of episodes killed in flight when the last attempt died belong to no
        # row: out of the way, so this attempt's evidence check starts clean.
        check_artifacts(run_dir, self.done.run_ids, interrupted=True, verify=False)
        # An attempt killed outright (kill -9, power loss) never wrote its own record.
        for record in manifest.attempts:
            if record.status == "running":
                record.status = "interrupted"
                record.episodes_run = self.done.attempts.get(record.attempt, 0)
        return OpenedRun(run_dir, manifest, checked.seal)


def _new_manifest(
    settings: RunSettings, scenario: list[ScenarioRow], checked: Validated, host: HostContext, stamp: str, run_dir: RunDir
) -> Manifest:
    fingerprint, fields = machine_id(host)
    # recorded as the run uses them: with_defaults filled in the interpreter and isolation, and
    # only a forkserver zygote warms up
    settings = msgspec.structs.replace(settings, warmup=settings.warmup if settings.isolation == "forkserver" else 0)
    return Manifest(
        generated_at=utc_now().isoformat(),
        scenario=scenario,
        system_samples={"available": True, "provider": "psutil", "interval_s": settings.sample_interval, "fields": SAMPLE_FIELDS},
        artifact_set=[],
        settings=settings,
        agents=checked.agents,
        stamp=stamp,
        status="running",
        interpreter=checked.interpreter,
        host=host,
        machine_class=fingerprint,
        machine_class_fields=fields,
        run_dir=str(run_dir.path),
        harness_version=__version__,
        attempts=[],
        agent_labels=checked.labels,
        counting=_counting() if settings.instructions else None,
    )


# --- the two entry points ---------------------------------------------------------------


def start(
    options: RunOptions,
    *,
    show_progress: bool = True,
    zygote: SpawnedZygote | None = None,
    busy: BusyProbe | None = None,
    input_checked: bool = False,
) -> Outcome:
    """A new run. ``zygote``: one ``spawn.prestart`` started for it before the harness's
    imports (the run adopts it, or discards it if it does not match the options); ``busy``:
    the quiet-host check's window, opened when that zygote started (default: now);
    ``input_checked``: the caller already held these options to ``checks.check_settings``
    (the command line does, before any process starts; ``preflight`` does)."""
    settings = with_defaults(options.settings)
    if not input_checked:
        check_settings(settings, Path(options.output_dir))
    target = NewRun(options, settings, busy or BusyProbe())  # watches the host while the zygote starts and we validate
    return Attempt(target, options.output_cap, show_progress=show_progress, spawned=zygote).run()


def resume(path: Path, *, output_cap: int, show_progress: bool = True) -> Outcome:
    """Finish an interrupted run: same parameters, only the episodes with no row. ``path``
    may be relative or a link to the run directory: the run is taken where it really is."""
    if os.path.isdir(path):
        path = Path(os.path.realpath(path))
    run_dir = RunDir(path)
    if not path.is_dir() or not (os.path.lexists(path / MANIFEST) or os.path.lexists(path / LOCK)):
        raise UsageError(f"not a run directory (no {MANIFEST}): {path}")
    run_dir.lock()  # before anything is read or touched: one attempt at a time
    try:
        try:
            taken = _take_run(run_dir)
            if isinstance(taken, Outcome):  # published to the end: nothing to do
                return taken
            manifest, settings, done, planted = taken
            check_settings(settings, None)
        except KeyboardInterrupt as exc:  # Ctrl-C (or SIGTERM) before the attempt began: the run is as it was
            return Outcome(exit_code=getattr(exc, "exit_code", ExitCode.INTERRUPTED), publication=None, run_dir=str(path))
        return Attempt(
            ResumedRun(run_dir, manifest, settings, done), output_cap, show_progress=show_progress, found=planted,
        ).run()  # fmt: skip
    finally:
        run_dir.unlock()  # taken above, held for the attempt (also when it stopped before it began)


def _take_run(run_dir: RunDir) -> tuple[Manifest, RunSettings, SeriesIndex, list[str]] | Outcome:
    """An interrupted run's manifest, the settings it goes on with (held to the bounds a new
    run's flags are: a manifest can be edited), its rows so far and what an earlier attempt's
    episode planted at the streams' names; or, for a run published to the end, its outcome
    (nothing to do)."""
    path = run_dir.path
    try:
        if not os.path.lexists(path / MANIFEST):  # a run taking its first steps has its lock, not yet this
            raise FileNotFoundError(f"no {MANIFEST}")
        manifest = run_dir.read_manifest()
    except (msgspec.DecodeError, msgspec.ValidationError, OSError) as exc:
        raise UsageError(f"run manifest unreadable: {path / MANIFEST}: {exc}") from None
    settings = recorded(manifest, str(path / MANIFEST))  # the run goes on as it began
    check_workers(settings.workers)
    check_memory_limit(settings.memory_limit)
    run_dir.remember()
    # What an episode of an earlier attempt may have left at the streams' names (a FIFO would
    # block the reads below): set aside, and the run is tainted.
    planted = set_aside_planted(run_dir, [run_dir.series, run_dir.samples])
    run_dir.repair_tail()
    done = SeriesIndex(run_dir, with_run_ids=True)
    if done.count > settings.episodes:
        raise UsageError(
            f"{path / MANIFEST}: settings.episodes {settings.episodes} is fewer than the {done.count} rows the run already has"
        )
    if done.count >= settings.episodes and manifest.status in PUBLISHED and not planted:
        code = ExitCode.OK if done.passed == done.count else ExitCode.FAILED
        code = ExitCode.TAINTED if manifest.status == "tainted" else code
        return Outcome(exit_code=code, publication=None, run_dir=str(path), already_published=True)
    # Rows missing, or all there but the publication never finished (the harness was stopped
    # or killed while checking or publishing): the attempt runs what is missing, maybe
    # nothing, and publishes.
    return manifest, settings, done, planted


@contextlib.contextmanager
def _signals_held():
    """SIGINT and SIGTERM held back for the block (delivered when it ends), in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _counting() -> InstructionCounting:
    return InstructionCounting(valgrind_version=valgrind_version(), hash_seed=HASH_SEED)


# --- one attempt, step by step ----------------------------------------------------------------


class Attempt:
    """One attempt at a run, new or resumed (``run`` shows its steps in order). Ctrl-C or
    SIGTERM once the run directory exists (warming up, checking, publishing) leaves the run
    resumable, as one during the batch does."""

    def __init__(
        self,
        target: NewRun | ResumedRun,
        output_cap: int,
        *,
        show_progress: bool,
        spawned: SpawnedZygote | None = None,
        found: list[str] | None = None,
    ) -> None:
        """``found``: problems a resume found before it began (the run is tainted). The
        settings and the rows an earlier attempt wrote (a resume) are the target's."""
        self.target = target
        self.settings = target.settings
        self.output_cap = output_cap
        self.show_progress = show_progress
        self.spawned = spawned
        self.done = target.done
        self.found = found or []
        self.guard = LimitGuard()  # an episode may lower the harness's own limits (prlimit): put back
        # set as the steps make them (None: not yet), for the clean-up and an interrupt
        self.opened: OpenedRun | None = None
        self.record: AttemptRecord | None = None
        self.scratch_root: Path | None = None
        self.log_handler: logging.Handler | None = None

    def run(self) -> Outcome:
        try:
            batch = anyio.run(self._steps)
            return self._publish(batch)
        except KeyboardInterrupt as exc:  # before the batch (the run directory made) or after it
            return self._interrupted(exc)
        finally:
            self._clean_up()

    async def _steps(self) -> BatchResult:
        """Start the zygote, open the run (validate; make or take its directory), record the
        attempt, warm up, run the batch."""
        keeper, native = await self._start_zygotes()
        try:
            self.opened = await self.target.open(await keeper.current(), await native.current() if native else None)
            await keeper.log_to(self.opened.run_dir.logs / "workers.log")
            if native is not None:
                await native.log_to(self.opened.run_dir.logs / "native-workers.log")
            self._record_attempt()
            # under Valgrind and natively at once
            await _together(self._warm_up(keeper), *([self._warm_up_native(native)] if native is not None else []))
        except BaseException:
            with anyio.CancelScope(shield=True):
                for each in (keeper, native):
                    if each is not None:
                        await each.close()
            raise
        return await self._run_batch(keeper, native)

    async def _start_zygotes(self) -> tuple[ZygoteKeeper, ZygoteKeeper | None]:
        """The run's zygote; in instruction mode, under Valgrind, and beside it, started at
        the same time, its native twin (``_warm_up_native``), which also answers validation's
        probe (``validate``)."""
        settings, rows = self.settings, self.target.rows
        if not settings.instructions:
            return await _start_zygote(settings.python, settings.isolation, rows, self.spawned), None
        started: dict[bool, ZygoteKeeper] = {}

        async def start(instructions: bool) -> None:
            spawned = self.spawned if instructions else None
            started[instructions] = await _start_zygote(settings.python, settings.isolation, rows, spawned, instructions)

        try:
            await _together(start(True), start(False))
        except BaseException:
            with anyio.CancelScope(shield=True):
                for keeper in started.values():
                    await keeper.close()
            raise
        return started[True], started[False]

    async def _warm_up_native(self, native: ZygoteKeeper) -> None:
        """Instruction mode: the native zygote warmed as the one under Valgrind is; its workers
        run each counted episode again for the kernel's figures (system time, minor page
        faults) that Valgrind's count cannot give, and the episodes not counted
        (``counted_per_row``)."""
        assert self.opened is not None and self.scratch_root is not None
        manifest = self.opened.manifest
        warmup = manifest.settings.warmup
        await native.warm_up(
            _warmup_rows(manifest) if warmup else [], warmup, self.scratch_root, agent_files=_agent_files(manifest)
        )

    def _record_attempt(self) -> None:
        assert self.opened is not None
        run_dir, manifest = self.opened.run_dir, self.opened.manifest
        self.record = AttemptRecord(attempt=len(manifest.attempts) + 1, started_at=utc_now().isoformat())
        manifest.attempts.append(self.record)
        manifest.status = "running"
        run_dir.write_manifest(manifest)
        # Episodes work in scratch directories of their own, outside the run directory.
        self.scratch_root = Path(tempfile.mkdtemp(prefix=f"tracecore-perf-{manifest.stamp}-"))
        self.log_handler = add_run_log(run_dir.path / "harness.log")

    async def _warm_up(self, keeper: ZygoteKeeper) -> None:
        assert self.opened is not None and self.scratch_root is not None
        manifest = self.opened.manifest
        warmup = manifest.settings.warmup
        await keeper.warm_up(
            _warmup_rows(manifest) if warmup else [], warmup, self.scratch_root, agent_files=_agent_files(manifest)
        )
        if not warmup:
            return
        cold = _cold_rows(manifest)
        manifest.warmup_notes = keeper.warmup_notes + (
            [
                f"{cold} scenario rows of your own agent files: their code compiled once but not run before their "
                "episodes (warm-up runs only TraceCore's shipped agents); their tasks warmed by TraceCore's shipped agent "
                "for each where it names one (agent_bench.pairings), else only loaded"
            ]
            if cold
            else []
        )
        self.opened.run_dir.write_manifest(manifest)

    async def _run_batch(self, keeper: ZygoteKeeper, native: ZygoteKeeper | None = None) -> BatchResult:
        assert self.opened is not None and self.record is not None and self.scratch_root is not None
        run_dir, manifest = self.opened.run_dir, self.opened.manifest
        settings = manifest.settings
        skip = self.done.done() if self.done else set()
        log.info(
            "run.start",
            stamp=manifest.stamp,
            attempt=self.record.attempt,
            episodes=settings.episodes - len(skip),
            workers=settings.workers,
            isolation=settings.isolation,
            run_dir=str(run_dir.path),
        )
        with ProgressBar(settings.episodes, already_done=len(skip)) if self.show_progress else _NoBar() as bar:
            on_row = bar.advance
            if settings.instructions and not bar.enabled:  # minutes under Valgrind: say how far it got
                lines = ProgressLines(settings.episodes, already_done=len(skip))
                on_row = lambda row: (bar.advance(row), lines.advance(row))  # noqa: E731
            execution = Execution(
                run_dir,
                keeper,
                settings,
                output_cap=self.output_cap,
                agents=manifest.agents,
                labels=manifest.agent_labels,
                scratch_root=self.scratch_root,
                attempt=self.record.attempt,
                known_artifacts=self.done.run_ids if self.done else {},
                on_row=on_row,
                guard=self.guard,
                seal=self.opened.seal,
                native=native,
                scenario_rows=len(manifest.scenario),
            )
            # TraceCore's metrics over the run's artifacts, where its TraceCore has the pipeline
            # (from 1.0.0; before it, perf-metrics is empty and the check says why)
            limit = 0 if "metrics" in manifest.interpreter.lacks else settings.episodes
            return await execution.run(plan(manifest.scenario, settings.episodes, skip), limit)

    def _publish(self, batch: BatchResult) -> Outcome:
        """After the batch: check the evidence, settle the status, publish, pick the exit code."""
        assert self.opened is not None and self.record is not None
        run_dir, manifest, attempt = self.opened.run_dir, self.opened.manifest, self.record
        attempt.episodes_run = batch.episodes_done
        attempt.finished_at = utc_now().isoformat()
        self.guard.check()
        if batch.ledgers is not None and vanished.gone(run_dir):
            return _vanished(run_dir, manifest, attempt, batch)
        integrity = _check_evidence(run_dir, manifest, batch, self.found)
        if batch.stopped_early:
            status = "interrupted"
        elif not integrity.clean:
            status = "tainted"
        else:
            status = "resumed" if attempt.attempt > 1 else "complete"
        attempt.status = manifest.status = status
        try:
            index = SeriesIndex(run_dir)
            usage = resource.getrusage(resource.RUSAGE_SELF)
            publication = publish(
                run_dir,
                manifest,
                index=index,
                metrics_rows=list(batch.metrics_rows),
                elapsed_s=batch.elapsed_s,
                harness_cpu_s=usage.ru_utime + usage.ru_stime,
                # the kernel's high-water mark for this process: start-up, the run and publishing
                harness_peak_rss_bytes=usage.ru_maxrss * 1024,
                workers_cpu_s=batch.worker_cpu_s,
                workers_instructions=batch.workers_instructions,
                workers_uncounted=batch.workers_uncounted,
                parts={"harness": ProcessShare(user_s=usage.ru_utime, sys_s=usage.ru_stime, minor_faults=usage.ru_minflt)}
                | batch.parts,
                episodes_this_attempt=batch.episodes_done,
                integrity=integrity,
            )
        except OSError as exc:
            # The run cannot publish (a full disk, the output folder read-only or gone): its rows
            # stay in the run directory, whose manifest says the publication did not finish, and
            # --resume publishes it.
            stopped = batch.aborted or f"cannot publish the run: {exc.strerror or exc}"
            attempt.status = manifest.status = "interrupted"
            with contextlib.suppress(OSError):
                run_dir.write_manifest(manifest)
            log.error("publish.failed", error=str(exc), run_dir=str(run_dir.path))
            return Outcome(exit_code=ExitCode.STOPPED, publication=None, run_dir=str(run_dir.path), stopped=stopped)
        if not batch.stopped_early:
            prune_run_artifacts(run_dir, manifest.settings.keep_runs, index.failed_run_ids)
        if batch.aborted is not None:
            code = ExitCode.STOPPED
        elif batch.interrupted_by is not None:
            code = 128 + batch.interrupted_by
        elif not integrity.clean:
            code = ExitCode.TAINTED
        else:
            code = ExitCode.OK if index.passed == index.count == manifest.settings.episodes else ExitCode.FAILED
        return Outcome(exit_code=code, publication=publication, run_dir=str(run_dir.path), stopped=batch.aborted)

    def _interrupted(self, exc: KeyboardInterrupt) -> Outcome:
        """Ctrl-C or SIGTERM outside the batch. Before the run directory exists: nothing to
        resume (raised on). Before the attempt was recorded: the manifest says "running" and
        --resume takes the run from there. Once it was (warming up, checking, publishing): the
        rows stay, the manifest says the attempt was interrupted, and --resume finishes it."""
        code = getattr(exc, "exit_code", ExitCode.INTERRUPTED)
        run_dir = self.opened.run_dir if self.opened is not None else self.target.run_dir
        if run_dir is None:
            raise exc
        if self.opened is None or self.record is None:
            return Outcome(exit_code=code, publication=None, run_dir=str(run_dir.path))
        manifest = self.opened.manifest
        self.record.status = manifest.status = "interrupted"
        self.record.finished_at = utc_now().isoformat()
        with contextlib.suppress(OSError):
            run_dir.write_manifest(manifest)
        log.warning("publish.interrupted", run_dir=str(run_dir.path))
        return Outcome(exit_code=code, publication=None, run_dir=str(run_dir.path))

    def _clean_up(self) -> None:
        sweep()  # the zygote and workers are closed: any process of the run left is a stray
        if self.scratch_root is not None:
            remove_tree(self.scratch_root)  # an episode may have left a tree too deep for rmtree
        if self.log_handler is not None:
            logging_handler_close(self.log_handler)
        self.guard.restore()
        run_dir = self.opened.run_dir if self.opened is not None else self.target.run_dir
        if run_dir is not None:
            run_dir.unlock()  # the attempt is over: another may take the run (rundir.RunDir.lock)


def _check_evidence(run_dir: RunDir, manifest: Manifest, batch: BatchResult, found: list[str]) -> Integrity:
    """The run's evidence held together: the streams, the artifacts against their digests,
    the rows as published against their artifacts and TraceCore's metrics, the sealed code,
    and what a resume found before it began."""
    out = run_dir.output_dir
    published = [artifact_path(out, kind, manifest.stamp) for kind in (*ARTIFACT_KINDS, "artifacts")]
    integrity = Integrity()
    if batch.ledgers is not None:
        try:
            integrity = check_run(
                run_dir, batch.ledgers, batch.artifact_check, write_failed=batch.aborted is not None, published=published
            )
        finally:
            batch.ledgers.close()
    if batch.aborted is None:  # the rows as they are published, against their artifacts and TraceCore's metrics
        check_agreement(run_dir, integrity, labels=manifest.agent_labels, metrics_rows=list(batch.metrics_rows))
    # checked once every process of the run was gone (Execution.run), before TraceCore's metrics
    integrity.problems.extend(describe_change([path]) for path in batch.code_changed)
    integrity.problems.extend(found)
    integrity.clean = not integrity.problems
    if not integrity.clean:
        log.error("run.tainted", problems=integrity.problems)
    return integrity


def _vanished(run_dir: RunDir, manifest: Manifest, attempt: AttemptRecord, batch: BatchResult) -> Outcome:
    """The run directory left its place during the run (``vanished``): the run stops (exit 3),
    resumable from where it now is, nothing published."""
    assert batch.ledgers is not None
    attempt.status = manifest.status = "interrupted"
    try:
        where = vanished.settle(run_dir, batch.ledgers, manifest)
    except OSError as exc:
        where = f"the run directory disappeared and cannot be made again at {run_dir.path} ({exc.strerror or exc})"
    finally:
        batch.ledgers.close()
    # why the run stopped, when it was not the directory's absence itself (an episode that
    # could not be recorded there, a signal)
    reason = batch.aborted if batch.aborted and not batch.aborted.startswith(vanished.DISAPPEARED) else None
    stopped = f"{reason}; {where}" if reason else where
    log.error("run.vanished", error=stopped)
    return Outcome(exit_code=ExitCode.STOPPED, publication=None, run_dir=str(run_dir.path), stopped=stopped)


def _warmup_rows(manifest: Manifest) -> list[dict]:
    """The scenario rows the warm-up runs, as the episodes run them (agents by the path they
    load and the name their artifacts record). Only rows of TraceCore's shipped agents: the
    warm-up runs agent code inside the zygote, one step closer to the harness than any
    episode, so a user's own agent file (which may be broken or hostile) is never run there.
    One row per (agent, task) among the rows the episodes run: what a warm-up warms (imports,
    caches, the agent's and the task's modules) is the same whatever the seed, and a scenario
    of 10^4 rows of one agent and task would otherwise run 10^4 warm-up episodes (~20 ms each)
    before the first one counted."""
    rows, seen = [], set()
    for row in manifest.scenario[: manifest.settings.episodes]:  # the plan cycles the rows: no others run
        path = manifest.agents.get(row.agent, row.agent)
        label = manifest.agent_labels.get(row.agent, row.agent)
        if label != path and (path, row.task_ref) not in seen:  # a packaged agent keeps the user's name as its label
            seen.add((path, row.task_ref))
            rows.append({"agent": path, "agent_label": label, "task_ref": row.task_ref, "seed": row.seed})
    # a task only the user's own agent files run: warmed by an agent the zygote picks for it
    # (no agent here: TraceCore's shipped agent for the task, warmup.task_agent), never the user's
    warmed = {row["task_ref"] for row in rows}
    for row in manifest.scenario[: manifest.settings.episodes]:
        if row.task_ref not in warmed:
            warmed.add(row.task_ref)
            rows.append({"agent": "", "agent_label": f"the task {row.task_ref}", "task_ref": row.task_ref, "seed": row.seed})
    return rows


async def _together(*calls: Coroutine[Any, Any, None]) -> None:
    """Await ``calls`` at once; the first one's error (in their order) is raised as it is,
    not in an exception group, once all have ended (a UsageError stays a one-line refusal)."""
    errors: list[tuple[int, Exception]] = []

    async def one(number: int, call: Coroutine[Any, Any, None]) -> None:
        try:
            await call
        except Exception as exc:  # noqa: BLE001 - raised below, the first in order
            errors.append((number, exc))

    async with anyio.create_task_group() as group:
        for number, call in enumerate(calls):
            group.start_soon(one, number, call)
    if errors:
        raise min(errors, key=lambda each: each[0])[1]


def _agent_files(manifest: Manifest) -> list[str]:
    """Every agent file the episodes load (absolute paths, the user's own too): each zygote
    compiles them once (``warmup.keep_compiled``), which runs none of their code."""
    return sorted({manifest.agents.get(row.agent, row.agent) for row in manifest.scenario[: manifest.settings.episodes]})


def _cold_rows(manifest: Manifest) -> int:
    """Scenario rows of the user's own agent files, whose code the warm-up never runs (it warms
    their tasks with TraceCore's shipped agents: ``warmup.task_agent``)."""
    return sum(
        manifest.agent_labels.get(row.agent, row.agent) == manifest.agents.get(row.agent, row.agent) for row in manifest.scenario
    )


class _NoBar:
    enabled = False

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def advance(self, row: object) -> None:
        return None


def logging_handler_close(handler: logging.Handler) -> None:
    logging.getLogger("tracecore_perf").removeHandler(handler)
    handler.close()
