"""The launcher: a zygote per run, one worker process per worker slot, and episodes run
through them.

The :class:`ZygoteProcess` is the harness's handle on ``episode_process.py zygote``
(``episode/zygote.py``), which warms TraceCore once and forks the workers;
:class:`ZygoteKeeper` starts another one when an episode kills or stops it. A
:class:`WorkerProcess` is the handle on one worker: ``run_episode`` sends a job, waits for the
outcome under the per-episode timeout, and on timeout asks the worker to kill the episode's
whole process tree (SIGTERM, then SIGKILL after a grace period). Every wait on the zygote or a
worker has a deadline: a process that dies, stops or sends something malformed raises
:class:`WorkerFailed` (:class:`ZygoteFailed` for the zygote), and the caller kills and
replaces it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import msgspec
import structlog
from anyio.abc import Process, UNIXSocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from tracecore_perf.errors import CodeChanged, RunAborted
from tracecore_perf.models import EpisodeJob, ProcessShare
from tracecore_perf.run import protocol
from tracecore_perf.run.episode.callgrind import callgrind_count
from tracecore_perf.run.episode.system import remove_tree
from tracecore_perf.run.protocol import PROTOCOL_VERSION, Bye, CallDone, Done, Ready
from tracecore_perf.run.seal import CodeSeal
from tracecore_perf.run.seal import describe as describe_change
from tracecore_perf.run.spawn import SpawnedZygote, new_callgrind_dir, spawn_zygote
from tracecore_perf.settings import IsolationMode

log = structlog.get_logger("tracecore_perf.run.launcher")

KILL_GRACE_S = 1.0
# How long past the grace period a worker may take to report a killed episode before the
# harness gives up on the worker itself.
WORKER_UNRESPONSIVE_S = 10.0
# Deadlines for the zygote: forking a worker, warming up and answering a probe or metrics
# request (the zygote's own deadline for the forked call, plus a margin).
SPAWN_DEADLINE_S = 15.0
WARM_DEADLINE_S = 120.0
CALL_DEADLINE_S = 120.0
CLOSE_DEADLINE_S = 10.0
# A worker that is to answer (its goodbye) or exit (writing its instruction count under Valgrind)
# is waited for while it uses CPU, however slow a loaded host makes it; one that uses none for
# this long (stopped, stuck) is given up on.
WORKER_QUIET_S = 10.0
EXITED_ANSWER_GRACE_S = 5.0  # reading what a worker sent before it exited (a socket's buffered bytes)
WARMUP_EPISODE_S = 30.0  # a warm-up episode longer than this is cut off, and its row left cold
# A zygote that cannot be started or fork a worker this many times in a row: the run stops.
ZYGOTE_ATTEMPTS = 3
# The worker caps what it forwards of an episode's result (64 KiB); a message beyond this
# is not the worker speaking.
MAX_LINE_BYTES = 1024 * 1024


class WorkerFailed(RuntimeError):
    """A worker process died, stopped answering, or sent something malformed; the zygote's
    failures are its subclass :class:`ZygoteFailed`, so a caller that catches this one
    catches both."""


class ZygoteFailed(WorkerFailed):
    """The zygote process could not be started, died, stopped answering, or sent something
    malformed."""


E = TypeVar("E")


def _greeting(ready: Ready, who: str, failure: type[WorkerFailed] = WorkerFailed) -> None:
    if ready.protocol != PROTOCOL_VERSION:
        raise failure(f"{who} speaks protocol {ready.protocol}, the harness {PROTOCOL_VERSION}: mixed installations?")


class WorkerProcess:
    """The harness's handle on one worker (a process forked by the zygote)."""

    def __init__(self, stream: UNIXSocketStream, pid: int, slot: int, zygote: Process | None = None) -> None:
        self.stream = stream
        self.pid = pid
        self.slot = slot
        self.zygote = zygote  # the process that forked it: the worker dies with it
        self._lines = BufferedByteReceiveStream(stream)
        self.cpu_user_s = 0.0
        self.cpu_sys_s = 0.0
        self.minor_faults = 0

    async def _send(self, command: msgspec.Struct) -> None:
        try:
            await self.stream.send(protocol.encoder.encode(command) + b"\n")
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise WorkerFailed(f"worker {self.slot} is gone: {exc}") from exc

    async def _receive(self) -> bytes:
        try:
            return await self._lines.receive_until(b"\n", MAX_LINE_BYTES)
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise WorkerFailed(f"worker {self.slot} (pid {self.pid}) closed its socket") from exc
        except anyio.DelimiterNotFound as exc:
            raise WorkerFailed(f"worker {self.slot} (pid {self.pid}) sent a message over {MAX_LINE_BYTES} bytes") from exc

    async def _expect(self, kind: type[E]) -> E:
        """The next message, which must be a ``kind``; anything else means the worker is
        broken (or not ours), and it is replaced."""
        line = await self._receive()
        try:
            event = protocol.worker_events.decode(line)
        except msgspec.DecodeError as exc:  # ValidationError included
            raise WorkerFailed(f"worker {self.slot} (pid {self.pid}) sent a malformed message: {exc}") from exc
        if not isinstance(event, kind):
            raise WorkerFailed(f"worker {self.slot}: expected {kind.__name__}, got {type(event).__name__}")
        return event

    def zygote_gone(self) -> bool:
        """Whether the zygote that forked this worker has exited (and taken the worker with it)."""
        return self.zygote is not None and self.zygote.returncode is not None

    async def greeted(self) -> None:
        _greeting(await self._expect(Ready), f"worker {self.slot} (pid {self.pid})")

    async def run_episode(
        self,
        job: EpisodeJob,
        *,
        agent_path: str,
        agent_label: str,
        timeout: float,
        scratch_root: Path,
        runs_dir: Path,
        log_path: Path,
        strict_spec: bool,
        output_cap: int,
        memory_limit: int | None = None,
        sandbox: bool = False,
        single_process: bool = False,
        profile_path: Path | None = None,
        profile_dir: list[int] | None = None,
        trace_python: bool = False,
    ) -> tuple[Done, bool]:
        """Run one episode (``agent_path``: the file the episode process loads; ``agent_label``:
        the name its artifact records). Returns the worker's account and whether the harness
        timed it out. Raises WorkerFailed when the worker dies, stops answering or sends
        garbage."""
        await self._send(
            protocol.Run(
                agent=agent_path,
                agent_label=agent_label,
                task_ref=job.task_ref,
                seed=job.seed,
                strict_spec=strict_spec,
                scratch_root=str(scratch_root),
                runs_dir=str(runs_dir),
                log_path=str(log_path),
                output_cap=output_cap,
                memory_limit=memory_limit,
                sandbox=sandbox,
                sandbox_hidden=hidden_from_sandbox(runs_dir.parents[1], scratch_root) if sandbox else [],
                single_process=single_process,
                profile_path=str(profile_path) if profile_path is not None else None,
                profile_dir=profile_dir,
                trace_python=trace_python,
            )
        )
        done = None
        try:
            with anyio.move_on_after(timeout):
                done = await self._expect(Done)
            timed_out = done is None
            if timed_out:
                await self._send(protocol.Kill(grace=KILL_GRACE_S))
                with anyio.move_on_after(KILL_GRACE_S + WORKER_UNRESPONSIVE_S):
                    done = await self._expect(Done)
                if done is None:
                    raise WorkerFailed(
                        f"worker {self.slot} (pid {self.pid}) did not report a killed episode within "
                        f"{KILL_GRACE_S + WORKER_UNRESPONSIVE_S:g} s (stopped or hung)"
                    )
        except WorkerFailed:
            raise  # the caller kills the worker, and the episode with it
        except BaseException:
            # Cancelled (the run was interrupted): the episode in flight must not survive.
            with anyio.CancelScope(shield=True):
                await self.abort_episode()
            raise
        return done, timed_out and done.killed

    async def abort_episode(self) -> None:
        """Kill the episode in flight and wait (bounded) for the worker to confirm."""
        try:
            await self._send(protocol.Kill(grace=0))
            with anyio.move_on_after(KILL_GRACE_S + 3):
                await self._expect(Done)
                return
        except WorkerFailed:
            pass
        await self.kill()

    async def close(self) -> None:
        """Ask the worker to exit; collects its own CPU time for the harness's accounting."""
        try:
            await self._send(protocol.Exit())
            bye = await _answer_while_working(self.pid, WORKER_QUIET_S, lambda: self._expect(Bye))
            self.cpu_user_s, self.cpu_sys_s, self.minor_faults = bye.cpu_user_s, bye.cpu_sys_s, bye.minor_faults
        except (WorkerFailed, TimeoutError):
            await self.kill()
        finally:
            await self.stream.aclose()
            _reap(self.pid)

    async def kill(self) -> None:
        """SIGTERM makes a worker kill its episode tree and exit (SIGCONT in case an episode
        stopped it); SIGKILL if it won't. Its socket reaching end-of-stream is how we see it
        gone."""
        for sig, patience in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
            try:
                os.kill(self.pid, sig)
                if sig == signal.SIGTERM:
                    os.kill(self.pid, signal.SIGCONT)
            except ProcessLookupError:
                break
            with anyio.move_on_after(patience):
                try:
                    while await self.stream.receive():
                        pass
                except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    break
        _reap(self.pid)


def hidden_from_sandbox(run_dir: Path, scratch_root: Path) -> list[str]:
    """What a sandboxed episode must not see: the run directory, unless its scratch lies inside.
    Absolute and resolved: the episode resolves a path from its scratch directory, where a
    relative one (``--output-dir out``) names nothing, and the sandbox hides a directory by
    mounting over it, so it must be the directory itself, not a link or a ``..`` on the way."""
    run_dir, scratch_root = Path(os.path.realpath(run_dir)), Path(os.path.realpath(scratch_root))
    return [] if run_dir == scratch_root or run_dir in scratch_root.parents else [str(run_dir)]


def _reap(pid: int) -> None:
    """Collect a worker if it is our child (a test's fake zygote); the zygote, or init when
    the zygote is gone, reaps it otherwise (the harness is not a subreaper: strays.py)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


class PopenProcess(Process):
    """A ``subprocess.Popen`` as an anyio process: the zygote is started with Popen (by
    ``spawn``, before the event loop exists) and awaited here through a pidfd."""

    def __init__(self, popen: subprocess.Popen) -> None:
        self._popen = popen

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    async def wait(self) -> int:
        while (code := self._popen.poll()) is None:
            try:
                pidfd = os.pidfd_open(self._popen.pid)
            except (AttributeError, OSError):  # not Linux >= 5.3: poll
                await anyio.sleep(0.05)
                continue
            try:
                await anyio.wait_readable(pidfd)  # readable once the process has exited
            finally:
                os.close(pidfd)
        return code

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def send_signal(self, sig: int) -> None:
        if self._popen.poll() is None:
            self._popen.send_signal(sig)

    async def aclose(self) -> None:
        await self.wait()

    @property
    def stdin(self) -> None:
        return None

    @property
    def stdout(self) -> None:
        return None

    @property
    def stderr(self) -> None:
        return None


class ZygoteProcess:
    """The harness's handle on a zygote: the episode interpreter's first process, which
    warms TraceCore once and forks a worker per slot on request."""

    def __init__(
        self, process: Process, control: UNIXSocketStream, isolation: IsolationMode, callgrind_dir: str | None = None
    ) -> None:
        self.process = process
        self.control = control
        self.isolation = isolation
        self._lines = BufferedByteReceiveStream(control)
        self._lock = anyio.Lock()  # one request at a time on the control socket
        self.cpu_user_s = 0.0
        self.cpu_sys_s = 0.0
        self.minor_faults = 0
        self.startup_log: Any = None
        self.callgrind_dir = callgrind_dir  # instruction mode: where its processes' counts go
        # False once a request failed (the socket may hold half an answer) or it exited.
        self.usable = True

    @classmethod
    async def start(
        cls,
        python: str,
        isolation: IsolationMode,
        scenario: list[dict[str, Any]],
        spawned: SpawnedZygote | None = None,
        callgrind_dir: str | None = None,
    ) -> ZygoteProcess:
        """Start the zygote (or adopt ``spawned``, started before the harness's imports) and
        let it warm up; with ``callgrind_dir``, under callgrind (instruction mode). Until
        ``log_to`` names the run's log, its stderr goes to a temporary file, so a failure to
        start can be reported."""
        wanted = (python, isolation, callgrind_dir)
        if spawned is None or spawned.adopted or (spawned.python, spawned.isolation, spawned.callgrind_dir) != wanted:
            if spawned is not None:
                spawned.discard()
            try:
                spawned = spawn_zygote(python, isolation, callgrind_dir)
            except OSError as exc:
                raise ZygoteFailed(f"cannot start {python}{' under valgrind' if callgrind_dir else ''}: {exc}") from exc
        spawned.adopted = True
        control = await UNIXSocketStream.from_socket(spawned.control)
        zygote = cls(PopenProcess(spawned.process), control, isolation, callgrind_dir)
        zygote.startup_log = spawned.startup_log
        try:
            await zygote._request(protocol.Warm(scenario=scenario), protocol.Warmed, deadline=WARM_DEADLINE_S, greeting=True)
        except WorkerFailed as exc:
            with anyio.CancelScope(shield=True):
                await zygote._stop()
            reason = zygote.startup_error() if zygote.process.returncode else str(exc)
            with anyio.CancelScope(shield=True):
                await zygote.close()
            raise ZygoteFailed(reason) from None
        return zygote

    def startup_error(self) -> str:
        """The last line the zygote wrote before it got a log of its own."""
        if self.startup_log is None:
            return "no output"
        self.startup_log.seek(0)
        lines = self.startup_log.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else f"exited with code {self.process.returncode}"

    async def probe(
        self,
        cwd: str,
        agents: list[str],
        task_refs: list[str],
        sandbox: bool = False,
        single_process: bool = False,
        light: bool = False,
    ) -> CallDone:
        """Resolve agents and task refs in a forked child of the zygote (``sandbox``: and
        whether episodes can be sandboxed here; ``single_process``: kept to one process;
        ``light``: that alone)."""
        command = protocol.Probe(
            cwd=cwd,
            agents=agents,
            task_refs=task_refs,
            deadline_s=CALL_DEADLINE_S,
            sandbox=sandbox,
            single_process=single_process,
            light=light,
        )
        return await self._request(command, CallDone, deadline=CALL_DEADLINE_S + 10)

    async def metrics(self, run_dir: Path, limit: int) -> CallDone:
        """TraceCore's metrics pipeline over ``run_dir``, in a forked child of the zygote."""
        command = protocol.Metrics(cwd=str(run_dir), limit=limit, deadline_s=CALL_DEADLINE_S)
        return await self._request(command, CallDone, deadline=CALL_DEADLINE_S + 10)

    async def rehearse(
        self, rows: list[dict[str, Any]], episodes: int, scratch_root: Path, agent_files: list[str] | None = None
    ) -> list[str]:
        """Warm-up: the ``agent_files`` compiled once (``warmup.keep_compiled``), then
        ``episodes`` episodes of each row run in the zygote and discarded."""
        command = protocol.Rehearse(
            rows=rows,
            episodes=episodes,
            scratch_root=str(scratch_root),
            deadline_s=WARMUP_EPISODE_S,
            agent_files=agent_files or [],
        )
        deadline = WARMUP_EPISODE_S * episodes * max(len(rows), 1) + 10
        return (await self._request(command, protocol.Rehearsed, deadline=deadline)).failures

    async def reap(self) -> None:
        """Have the zygote kill and reap every process re-parented to it (what episodes of
        workers that died left running)."""
        await self._request(protocol.Reap(), protocol.Reaped, deadline=SPAWN_DEADLINE_S)

    async def log_to(self, path: Path) -> None:
        await self._request(protocol.Log(path=str(path)), protocol.Logging, deadline=SPAWN_DEADLINE_S)
        if self.startup_log is not None:
            self.startup_log.close()
            self.startup_log = None

    async def _request(
        self,
        command: msgspec.Struct,
        answer: type[E],
        *,
        deadline: float,
        fds: list[int] | None = None,
        greeting: bool = False,
    ) -> E:
        """Send ``command`` (after the zygote's greeting, the first time) and wait, at most
        ``deadline`` seconds, for its ``answer``. Any failure leaves the zygote unusable."""
        if not self.usable or self.process.returncode is not None:
            self.usable = False
            raise ZygoteFailed(f"the zygote process is gone (exit code {self.process.returncode})")
        async with self._lock:
            reply = None
            try:
                with anyio.move_on_after(deadline):
                    if greeting:
                        _greeting(await self._expect(Ready), "the zygote", ZygoteFailed)
                    payload = protocol.encoder.encode(command) + b"\n"
                    if fds:
                        await self.control.send_fds(payload, list(fds))
                    else:
                        await self.control.send(payload)
                    reply = await self._expect(answer)
            except (
                anyio.BrokenResourceError,
                anyio.ClosedResourceError,
                anyio.EndOfStream,
                anyio.IncompleteRead,
                anyio.DelimiterNotFound,
                OSError,
            ) as exc:
                self.usable = False
                raise ZygoteFailed(f"the zygote process is gone (exit code {self.process.returncode}): {exc}") from exc
            except msgspec.DecodeError as exc:
                self.usable = False
                raise ZygoteFailed(f"the zygote's answer to {type(command).__name__} is unreadable: {exc}") from exc
            except WorkerFailed:
                self.usable = False
                raise
            if reply is None:
                self.usable = False
                raise ZygoteFailed(f"the zygote did not answer {type(command).__name__} within {deadline:g} s (stopped or hung)")
            return reply

    async def _expect(self, kind: type[E]) -> E:
        event = protocol.zygote_events.decode(await self._lines.receive_until(b"\n", MAX_LINE_BYTES))
        if not isinstance(event, kind):
            raise ZygoteFailed(f"zygote: expected {kind.__name__}, got {type(event).__name__}")
        return event

    async def spawn_worker(self, slot: int) -> WorkerProcess:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            spawned = await self._request(protocol.Spawn(), protocol.Spawned, fds=[theirs.fileno()], deadline=SPAWN_DEADLINE_S)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        worker = WorkerProcess(await UNIXSocketStream.from_socket(ours), spawned.pid, slot, self.process)
        greeted = False
        try:
            with anyio.move_on_after(SPAWN_DEADLINE_S):
                await worker.greeted()
                greeted = True
        finally:
            if not greeted:
                with anyio.CancelScope(shield=True):
                    await worker.kill()
                    await worker.stream.aclose()
        if not greeted:
            raise WorkerFailed(f"a new worker (pid {worker.pid}) did not greet within {SPAWN_DEADLINE_S:g} s")
        return worker

    async def _stop(self) -> None:
        """SIGKILL (which also ends a stopped process) and reap, bounded."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        with anyio.move_on_after(5):
            await self.process.wait()

    async def close(self) -> None:
        """Ask the zygote to stop its workers and exit; kill it if it does not answer."""
        try:
            bye = await self._request(protocol.Exit(), Bye, deadline=CLOSE_DEADLINE_S)
            self.cpu_user_s, self.cpu_sys_s, self.minor_faults = bye.cpu_user_s, bye.cpu_sys_s, bye.minor_faults
            with anyio.fail_after(5):
                await self.process.wait()
        except (WorkerFailed, TimeoutError):
            pass
        finally:
            self.usable = False
            await self._stop()
            await self.control.aclose()
            if self.process.returncode is not None:
                await self.process.aclose()
            if self.startup_log is not None:
                self.startup_log.close()


class ZygoteKeeper:
    """The run's zygote, and a new one when it is lost. Every episode descends from the
    zygote, so an episode can kill or stop it; the workers it already forked go on (they
    answer to the harness, not to it), and the next worker comes from a fresh zygote."""

    def __init__(self, python: str, isolation: IsolationMode, scenario: list[dict[str, Any]], instructions: bool = False) -> None:
        self.python = python
        self.isolation = isolation
        self.scenario = scenario
        # instruction mode: the one folder every zygote of the run (and its workers) counts
        # into; removed when the keeper closes
        self.instructions = instructions
        self.callgrind_dir: str | None = None
        self.zygote: ZygoteProcess | None = None
        self.log_path: Path | None = None
        self.restarts = 0
        self._lock = anyio.Lock()
        # warm-up: set by ``warm_up``, repeated in every zygote started after it
        self.warmup_rows: list[dict[str, Any]] = []
        self.warmup_episodes = 0
        self.scratch_root: Path | None = None
        self.warmup_notes: list[str] = []
        self.agent_files: list[str] = []  # what every zygote compiles once (``warm_up``)
        # the code episodes load, as it was before the first one (seal.CodeSeal); no worker or
        # zygote is started from it once it changed
        self.seal: CodeSeal | None = None
        # instruction mode: every worker forked for the run, and (once closed) the instructions
        # they executed from their fork to their exit, as callgrind counted them
        self.worker_pids: list[int] = []
        self.workers_instructions: int | None = None
        self.workers_uncounted: int | None = None  # workers that wrote no count (killed)

    def check_code(self) -> None:
        """Raise CodeChanged if code the episodes load changed since the run began."""
        changed = self.seal.changed() if self.seal is not None else []
        if changed:
            raise CodeChanged(changed, describe_change(changed) + "; no new episode interpreter is started from it")

    async def start(self, spawned: SpawnedZygote | None = None) -> ZygoteProcess:
        if self.instructions:
            adoptable = spawned is not None and not spawned.adopted and spawned.matches(self.python, self.isolation, True)
            self.callgrind_dir = spawned.callgrind_dir if adoptable else new_callgrind_dir()
        self.zygote = await ZygoteProcess.start(self.python, self.isolation, self.scenario, spawned, self.callgrind_dir)
        return self.zygote

    async def log_to(self, path: Path) -> None:
        self.log_path = path
        try:
            await (await self.current()).log_to(path)
        except WorkerFailed:  # lost since it was checked (killed by an agent file's check): replace it
            await self.current()  # a new zygote logs to ``path`` as it starts

    async def warm_up(
        self, rows: list[dict[str, Any]], episodes: int, scratch_root: Path, *, agent_files: list[str] | None = None
    ) -> None:
        """Run the warm-up in the current zygote (forkserver), and in every later one: the agent
        files ``agent_files`` compiled once (whatever ``episodes``), then the rows' episodes."""
        agent_files = list(agent_files or [])
        if self.isolation != "forkserver" or ((episodes <= 0 or not rows) and not agent_files):
            return
        self.warmup_rows, self.warmup_episodes, self.scratch_root = rows, max(episodes, 0), scratch_root
        self.agent_files = agent_files
        zygote = await self.current()
        await self._rehearse(zygote)

    async def _rehearse(self, zygote: ZygoteProcess) -> None:
        """A failing row stays cold (noted); a zygote the warm-up killed or hung is replaced
        by one that skips the warm-up from then on."""
        assert self.scratch_root is not None
        try:
            failures = await zygote.rehearse(self.warmup_rows, self.warmup_episodes, self.scratch_root, self.agent_files)
        except WorkerFailed as exc:
            note = f"warm-up abandoned, episodes run cold: {exc}"
            log.warning("warmup.abandoned", error=str(exc))
            self.warmup_notes.append(note)
            self.warmup_episodes = 0  # the next zygote starts cold
            return
        for failure in failures:
            log.warning("warmup.failed", row=failure)
        self.warmup_notes.extend(failures)

    async def current(self) -> ZygoteProcess:
        """The live zygote; a new one (warmed, logging to the run) if the last is gone."""
        async with self._lock:
            if self.zygote is not None and self.zygote.usable and self.zygote.process.returncode is None:
                return self.zygote
            lost, self.zygote = self.zygote, None
            if lost is not None:
                log.warning("zygote.lost", pid=lost.process.pid, returncode=lost.process.returncode)
                with anyio.CancelScope(shield=True):
                    await lost.close()
            self.check_code()  # a new zygote loads TraceCore afresh: never from changed code
            last: Exception | None = None
            for _ in range(ZYGOTE_ATTEMPTS):
                zygote = None
                try:
                    zygote = await ZygoteProcess.start(self.python, self.isolation, self.scenario, None, self.callgrind_dir)
                    if self.log_path is not None:
                        await zygote.log_to(self.log_path)
                    if self.warmup_episodes > 0 or self.agent_files:
                        await self._rehearse(zygote)  # a failure there leaves it cold, not lost
                        if not zygote.usable:
                            raise ZygoteFailed("the warm-up left the new zygote unusable")
                except WorkerFailed as exc:
                    last = exc
                    if zygote is not None:
                        with anyio.CancelScope(shield=True):
                            await zygote.close()
                    continue
                self.restarts += 1
                log.warning("zygote.restarted", pid=zygote.process.pid, restarts=self.restarts)
                self.zygote = zygote
                return zygote
            raise RunAborted(f"the episode interpreter could not be started again ({ZYGOTE_ATTEMPTS} tries): {last}")

    async def spawn_worker(self, slot: int, replacing: bool = False) -> WorkerProcess:
        """A new worker for ``slot`` (``replacing`` one that failed: not if code the episodes
        load has changed since the run began); a zygote that fails to fork one is replaced."""
        if replacing:
            self.check_code()
        last: Exception | None = None
        for _ in range(ZYGOTE_ATTEMPTS):
            zygote = await self.current()
            try:
                worker = await zygote.spawn_worker(slot)
                self.worker_pids.append(worker.pid)
                return worker
            except WorkerFailed as exc:
                zygote.usable = False
                last = exc
        raise RunAborted(f"no worker could be started ({ZYGOTE_ATTEMPTS} tries): {last}")

    @property
    def cpu_s(self) -> float:
        """CPU time the current zygote reported when it closed (lost ones cannot)."""
        return (self.zygote.cpu_user_s + self.zygote.cpu_sys_s) if self.zygote else 0.0

    @property
    def share(self) -> ProcessShare:
        """What the current zygote reported of itself when it closed (lost ones cannot)."""
        return ProcessShare.of(self.zygote) if self.zygote else ProcessShare()

    async def counts_written(self) -> None:
        """Instruction mode: wait until every worker that said goodbye has exited (or stalled).
        Callgrind writes a worker's count as it exits, which takes a while under it; killing
        the run's leftover processes, or ending the zygote, before then would lose it."""
        if self.callgrind_dir is not None:
            await _exited(self.worker_pids, WORKER_QUIET_S)

    async def close(self) -> None:
        try:
            if self.zygote is not None:
                await self.zygote.close()
        finally:
            if self.callgrind_dir is not None:
                counts = _worker_counts(self.callgrind_dir, self.worker_pids)
                self.workers_instructions = sum(counts) if counts else None
                self.workers_uncounted = len(self.worker_pids) - len(counts)
                remove_tree(self.callgrind_dir)  # the workers' and zygotes' own counts


async def _exited(pids: list[int], quiet_s: float) -> None:
    """Wait until each of ``pids`` has exited (gone, or a zombie its parent has not reaped
    yet), or has used no CPU time for ``quiet_s`` (``_stalled``)."""
    for pid in pids:
        await _stalled(pid, quiet_s)


async def _stalled(pid: int, quiet_s: float) -> bool:
    """Return once process ``pid`` is gone or a zombie (True), or has used no CPU time for
    ``quiet_s`` (False): a loaded host slows a process, it does not stop it, so no fixed
    deadline decides."""
    import psutil

    try:
        process = psutil.Process(pid)
    except psutil.Error:
        return True
    used, since = -1.0, time.monotonic()
    while True:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
            times = process.cpu_times()
        except psutil.Error:
            return True
        if times.user + times.system != used:
            used, since = times.user + times.system, time.monotonic()
        elif time.monotonic() - since > quiet_s:
            return False
        await anyio.sleep(0.01)


async def _answer_while_working(pid: int, quiet_s: float, answer: Callable[[], Awaitable[E]]) -> E:
    """``answer()``, awaited while process ``pid`` keeps using CPU time. Once it has exited,
    what it sent before is still read (its end of the socket is closed: the read ends); once it
    has used no CPU for ``quiet_s`` (stopped, stuck), TimeoutError. What ``answer`` raises is
    raised as it is (not in an exception group)."""
    got: list = []
    failed: list[Exception] = []
    async with anyio.create_task_group() as group:

        async def receive() -> None:
            try:
                got.append(await answer())
            except Exception as exc:
                failed.append(exc)
            group.cancel_scope.cancel()

        group.start_soon(receive)
        if await _stalled(pid, quiet_s):
            # gone: its answer, if it sent one, is in the socket; a descendant that kept the
            # socket open could hold the read, so a few seconds, no more
            await anyio.sleep(EXITED_ANSWER_GRACE_S)
        group.cancel_scope.cancel()
    if failed:
        raise failed[0]
    if not got:
        raise TimeoutError(f"process {pid} gave no answer (it exited, or used no CPU for {quiet_s:g} s)")
    return got[0]


def _worker_counts(callgrind_dir: str, pids: list[int]) -> list[int]:
    """The instructions callgrind counted for each of ``pids`` that wrote a count (each from
    its fork to its exit)."""
    counts = [callgrind_count(os.path.join(callgrind_dir, f"callgrind.out.{pid}")) for pid in pids]
    return [count for count in counts if count is not None]
