"""The launcher: a zygote per run, one worker process per worker slot, and episodes run
through them.

The :class:`Zygote` is the harness's handle on ``episode_worker.py zygote``, which warms
TraceCore once and forks the workers; :class:`ZygoteKeeper` starts another one when an
episode kills or stops it. A :class:`WorkerProcess` is the handle on one worker:
``run_episode`` sends a job, waits for the outcome under the per-episode timeout, and on
timeout asks the worker to kill the episode's whole process tree (SIGTERM, then SIGKILL
after a grace period). Every wait on the zygote or a worker has a deadline: a process that
dies, stops or sends something malformed raises :class:`WorkerFailed`, and the caller kills
and replaces it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
import msgspec
import structlog
from anyio.abc import Process, UNIXSocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from tracecore_perf.errors import RunAborted
from tracecore_perf.models import CallOutcome, EpisodeJob, EpisodeOutcome, IsolationMode

log = structlog.get_logger("tracecore_perf.launcher")

WORKER_SCRIPT = Path(__file__).with_name("episode_worker.py")
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
# A zygote that cannot be started or fork a worker this many times in a row: the run stops.
ZYGOTE_ATTEMPTS = 3
# The worker caps what it forwards of an episode's result (64 KiB); a message beyond this
# is not the worker speaking.
MAX_LINE_BYTES = 1024 * 1024


class WorkerFailed(RuntimeError):
    """The worker (or zygote) process died, stopped answering, or sent something malformed."""


class _Event(msgspec.Struct):
    event: str


_outcome_decoder = msgspec.json.Decoder(EpisodeOutcome)
_call_decoder = msgspec.json.Decoder(CallOutcome)
_event_decoder = msgspec.json.Decoder(_Event)
_encoder = msgspec.json.Encoder()


class WorkerProcess:
    """The harness's handle on one worker (a process forked by the zygote)."""

    def __init__(self, stream: UNIXSocketStream, pid: int, slot: int) -> None:
        self.stream = stream
        self.pid = pid
        self.slot = slot
        self._lines = BufferedByteReceiveStream(stream)
        self.cpu_user_s = 0.0
        self.cpu_sys_s = 0.0

    async def _send(self, message: dict[str, Any]) -> None:
        try:
            await self.stream.send(_encoder.encode(message) + b"\n")
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise WorkerFailed(f"worker {self.slot} is gone: {exc}") from exc

    async def _receive(self) -> bytes:
        try:
            return await self._lines.receive_until(b"\n", MAX_LINE_BYTES)
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise WorkerFailed(f"worker {self.slot} (pid {self.pid}) closed its socket") from exc
        except anyio.DelimiterNotFound as exc:
            raise WorkerFailed(f"worker {self.slot} (pid {self.pid}) sent a message over {MAX_LINE_BYTES} bytes") from exc

    async def _expect(self, event: str) -> bytes:
        line = await self._receive()
        try:
            got = _event_decoder.decode(line).event
        except msgspec.DecodeError as exc:
            raise WorkerFailed(f"worker {self.slot} (pid {self.pid}) sent a malformed message: {exc}") from exc
        if got != event:
            raise WorkerFailed(f"worker {self.slot}: expected {event!r}, got {got!r}")
        return line

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
    ) -> tuple[EpisodeOutcome, bool]:
        """Run one episode (``agent_path``: the file the episode process loads; ``agent_label``:
        the name its artifact records). Returns the outcome and whether the harness timed it
        out. Raises WorkerFailed when the worker dies, stops answering or sends garbage."""
        await self._send(
            {
                "cmd": "run",
                "agent": agent_path,
                "agent_label": agent_label,
                "task_ref": job.task_ref,
                "seed": job.seed,
                "strict_spec": strict_spec,
                "scratch_root": str(scratch_root),
                "runs_dir": str(runs_dir),
                "log_path": str(log_path),
                "output_cap": output_cap,
            }
        )
        line = None
        try:
            with anyio.move_on_after(timeout):
                line = await self._expect("done")
            timed_out = line is None
            if timed_out:
                await self._send({"cmd": "kill", "grace": KILL_GRACE_S})
                with anyio.move_on_after(KILL_GRACE_S + WORKER_UNRESPONSIVE_S):
                    line = await self._expect("done")
                if line is None:
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
        try:
            outcome = _outcome_decoder.decode(line)
        except msgspec.DecodeError as exc:  # ValidationError included
            raise WorkerFailed(f"worker {self.slot} (pid {self.pid}) sent a malformed outcome: {exc}") from exc
        return outcome, timed_out and outcome.killed

    async def abort_episode(self) -> None:
        """Kill the episode in flight and wait (bounded) for the worker to confirm."""
        try:
            await self._send({"cmd": "kill", "grace": 0})
            with anyio.move_on_after(KILL_GRACE_S + 3):
                await self._expect("done")
                return
        except WorkerFailed:
            pass
        await self.kill()

    async def close(self) -> None:
        """Ask the worker to exit; collects its own CPU time for the harness's accounting."""
        try:
            await self._send({"cmd": "exit"})
            with anyio.fail_after(5):
                bye = _bye_decoder.decode(await self._expect("bye"))
            self.cpu_user_s, self.cpu_sys_s = bye.cpu_user_s, bye.cpu_sys_s
        except (WorkerFailed, TimeoutError, msgspec.DecodeError):
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


def _reap(pid: int) -> None:
    """Collect a worker that became our child (its zygote died before it, and the harness
    is a child subreaper); nothing to do when the zygote reaps it."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


class _Bye(msgspec.Struct):
    event: str
    cpu_user_s: float = 0.0
    cpu_sys_s: float = 0.0


class _Spawned(msgspec.Struct):
    event: str
    pid: int


_bye_decoder = msgspec.json.Decoder(_Bye)
_spawned_decoder = msgspec.json.Decoder(_Spawned)


class Zygote:
    """The harness's handle on a zygote: the episode interpreter's first process, which
    warms TraceCore once and forks a worker per slot on request."""

    def __init__(self, process: Process, control: UNIXSocketStream, isolation: IsolationMode) -> None:
        self.process = process
        self.control = control
        self.isolation = isolation
        self._lines = BufferedByteReceiveStream(control)
        self._lock = anyio.Lock()  # one request at a time on the control socket
        self.cpu_user_s = 0.0
        self.cpu_sys_s = 0.0
        self.startup_log: Any = None
        # False once a request failed (the socket may hold half an answer) or it exited.
        self.usable = True

    @classmethod
    async def start(cls, python: str, isolation: IsolationMode, scenario: list[dict[str, Any]]) -> Zygote:
        """Start the zygote and let it warm up. Until ``log_to`` names the run's log, its
        stderr goes to a temporary file, so a failure to start can be reported."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        startup_log = tempfile.TemporaryFile()  # noqa: SIM115 - kept open until log_to()/close()
        try:
            process = await anyio.open_process(
                [python, str(WORKER_SCRIPT), "zygote", isolation, str(os.getpid())],
                stdin=theirs.fileno(),
                stdout=startup_log,
                stderr=startup_log,
                start_new_session=True,  # a terminal's Ctrl-C is the harness's to handle
            )
        except OSError as exc:
            startup_log.close()
            ours.close()
            raise WorkerFailed(f"cannot start {python}: {exc}") from exc
        finally:
            theirs.close()
        zygote = cls(process, await UNIXSocketStream.from_socket(ours), isolation)
        zygote.startup_log = startup_log
        try:
            await zygote._request(
                {"cmd": "warm", "scenario": scenario}, expect="warmed", wait_ready=True, deadline=WARM_DEADLINE_S
            )
        except WorkerFailed as exc:
            with anyio.CancelScope(shield=True):
                await zygote._stop()
            reason = zygote.startup_error() if zygote.process.returncode else str(exc)
            with anyio.CancelScope(shield=True):
                await zygote.close()
            raise WorkerFailed(reason) from None
        return zygote

    def startup_error(self) -> str:
        """The last line the zygote wrote before it got a log of its own."""
        if self.startup_log is None:
            return "no output"
        self.startup_log.seek(0)
        lines = self.startup_log.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else f"exited with code {self.process.returncode}"

    async def probe(self, request: dict[str, Any]) -> CallOutcome:
        """Resolve agents and task refs in a forked child of the zygote."""
        return await self._call({"cmd": "probe", **request})

    async def metrics(self, run_dir: Path, limit: int) -> CallOutcome:
        """TraceCore's metrics pipeline over ``run_dir``, in a forked child of the zygote."""
        return await self._call({"cmd": "metrics", "cwd": str(run_dir), "limit": limit})

    async def _call(self, request: dict[str, Any]) -> CallOutcome:
        line = await self._request({**request, "deadline_s": CALL_DEADLINE_S}, expect="done", deadline=CALL_DEADLINE_S + 10)
        try:
            return _call_decoder.decode(line)
        except msgspec.DecodeError as exc:
            self.usable = False
            raise WorkerFailed(f"the zygote sent a malformed answer: {exc}") from exc

    async def reap(self) -> None:
        """Have the zygote kill and reap every process re-parented to it (what episodes of
        workers that died left running)."""
        await self._request({"cmd": "reap"}, expect="reaped", deadline=SPAWN_DEADLINE_S)

    async def log_to(self, path: Path) -> None:
        await self._request({"cmd": "log", "path": str(path)}, expect="logging", deadline=SPAWN_DEADLINE_S)
        if self.startup_log is not None:
            self.startup_log.close()
            self.startup_log = None

    async def _request(
        self,
        message: dict[str, Any],
        expect: str,
        *,
        deadline: float,
        fds: list[int] | None = None,
        wait_ready: bool = False,
    ) -> bytes:
        if not self.usable or self.process.returncode is not None:
            self.usable = False
            raise WorkerFailed(f"the zygote process is gone (exit code {self.process.returncode})")
        async with self._lock:
            line = None
            try:
                with anyio.move_on_after(deadline):
                    if wait_ready:
                        await self._expect("ready")
                    payload = _encoder.encode(message) + b"\n"
                    if fds:
                        await self.control.send_fds(payload, list(fds))
                    else:
                        await self.control.send(payload)
                    line = await self._expect(expect)
            except (
                anyio.BrokenResourceError,
                anyio.ClosedResourceError,
                anyio.EndOfStream,
                anyio.IncompleteRead,
                anyio.DelimiterNotFound,
                msgspec.DecodeError,
                OSError,
            ) as exc:
                self.usable = False
                raise WorkerFailed(f"the zygote process is gone (exit code {self.process.returncode}): {exc}") from exc
            except WorkerFailed:
                self.usable = False
                raise
            if line is None:
                self.usable = False
                raise WorkerFailed(f"the zygote did not answer {message.get('cmd')!r} within {deadline:g} s (stopped or hung)")
            return line

    async def _expect(self, event: str) -> bytes:
        line = await self._lines.receive_until(b"\n", MAX_LINE_BYTES)
        got = _event_decoder.decode(line).event
        if got != event:
            raise WorkerFailed(f"zygote: expected {event!r}, got {got!r}")
        return line

    async def spawn_worker(self, slot: int) -> WorkerProcess:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            line = await self._request({"cmd": "spawn"}, expect="spawned", fds=[theirs.fileno()], deadline=SPAWN_DEADLINE_S)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        worker = WorkerProcess(await UNIXSocketStream.from_socket(ours), _spawned_decoder.decode(line).pid, slot)
        greeted = False
        try:
            with anyio.move_on_after(SPAWN_DEADLINE_S):
                await worker._expect("ready")
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
            line = await self._request({"cmd": "exit"}, expect="bye", deadline=CLOSE_DEADLINE_S)
            bye = _bye_decoder.decode(line)
            self.cpu_user_s, self.cpu_sys_s = bye.cpu_user_s, bye.cpu_sys_s
            with anyio.fail_after(5):
                await self.process.wait()
        except (WorkerFailed, TimeoutError, msgspec.DecodeError):
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

    def __init__(self, python: str, isolation: IsolationMode, scenario: list[dict[str, Any]]) -> None:
        self.python = python
        self.isolation = isolation
        self.scenario = scenario
        self.zygote: Zygote | None = None
        self.log_path: Path | None = None
        self.restarts = 0
        self._lock = anyio.Lock()

    async def start(self) -> Zygote:
        self.zygote = await Zygote.start(self.python, self.isolation, self.scenario)
        return self.zygote

    async def log_to(self, path: Path) -> None:
        self.log_path = path
        await (await self.current()).log_to(path)

    async def current(self) -> Zygote:
        """The live zygote; a new one (warmed, logging to the run) if the last is gone."""
        async with self._lock:
            if self.zygote is not None and self.zygote.usable and self.zygote.process.returncode is None:
                return self.zygote
            lost, self.zygote = self.zygote, None
            if lost is not None:
                log.warning("zygote.lost", pid=lost.process.pid, returncode=lost.process.returncode)
                with anyio.CancelScope(shield=True):
                    await lost.close()
            last: Exception | None = None
            for _ in range(ZYGOTE_ATTEMPTS):
                try:
                    zygote = await Zygote.start(self.python, self.isolation, self.scenario)
                    if self.log_path is not None:
                        await zygote.log_to(self.log_path)
                except WorkerFailed as exc:
                    last = exc
                    continue
                self.restarts += 1
                log.warning("zygote.restarted", pid=zygote.process.pid, restarts=self.restarts)
                self.zygote = zygote
                return zygote
            raise RunAborted(f"the episode interpreter could not be started again ({ZYGOTE_ATTEMPTS} tries): {last}")

    async def spawn_worker(self, slot: int) -> WorkerProcess:
        """A new worker for ``slot``; a zygote that fails to fork one is replaced."""
        last: Exception | None = None
        for _ in range(ZYGOTE_ATTEMPTS):
            zygote = await self.current()
            try:
                return await zygote.spawn_worker(slot)
            except WorkerFailed as exc:
                zygote.usable = False
                last = exc
        raise RunAborted(f"no worker could be started ({ZYGOTE_ATTEMPTS} tries): {last}")

    @property
    def cpu_s(self) -> float:
        """CPU time the current zygote reported when it closed (lost ones cannot)."""
        return (self.zygote.cpu_user_s + self.zygote.cpu_sys_s) if self.zygote else 0.0

    async def close(self) -> None:
        if self.zygote is not None:
            await self.zygote.close()


def default_isolation() -> IsolationMode:
    return "forkserver" if hasattr(os, "fork") else "spawn"


def default_python() -> str:
    return sys.executable
