"""The launcher: a zygote per run, one worker process per worker slot, and episodes run
through them.

The :class:`Zygote` is the harness's handle on ``episode_worker.py zygote``, which warms
TraceCore once and forks the workers. A :class:`WorkerProcess` is the handle on one
worker: ``run_episode`` sends a job, waits for the outcome under the per-episode timeout, and
on timeout asks the worker to kill the episode's whole process tree (SIGTERM, then
SIGKILL after a grace period). If the worker itself stops answering, it is killed and
replaced, and the episode is recorded as lost to a worker failure.
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
from anyio.abc import Process, UNIXSocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from tracecore_perf.models import CallOutcome, EpisodeJob, EpisodeOutcome, IsolationMode

WORKER_SCRIPT = Path(__file__).with_name("episode_worker.py")
KILL_GRACE_S = 1.0
# How long past the grace period a worker may take to report a killed episode before the
# harness gives up on the worker itself.
WORKER_UNRESPONSIVE_S = 10.0
MAX_LINE_BYTES = 8 * 1024 * 1024


class WorkerFailed(RuntimeError):
    """The worker process died or stopped answering."""


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

    async def _expect(self, event: str) -> bytes:
        line = await self._receive()
        got = _event_decoder.decode(line).event
        if got != event:
            raise WorkerFailed(f"worker {self.slot}: expected {event!r}, got {got!r}")
        return line

    async def run_episode(
        self,
        job: EpisodeJob,
        *,
        agent_path: str,
        timeout: float,
        cwd: Path,
        log_path: Path,
        strict_spec: bool,
        output_cap: int,
    ) -> tuple[EpisodeOutcome, bool]:
        """Run one episode (``agent_path``: the job's agent as the episode process loads it).
        Returns the outcome and whether the harness timed it out."""
        await self._send(
            {
                "cmd": "run",
                "agent": agent_path,
                "task_ref": job.task_ref,
                "seed": job.seed,
                "strict_spec": strict_spec,
                "cwd": str(cwd),
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
                with anyio.fail_after(KILL_GRACE_S + WORKER_UNRESPONSIVE_S):
                    line = await self._expect("done")
        except BaseException:
            # Cancelled (the run was interrupted) or the worker misbehaved: the episode in
            # flight must not survive; the caller decides what to do with the worker.
            with anyio.CancelScope(shield=True):
                await self.abort_episode()
            raise
        outcome = _outcome_decoder.decode(line)
        return outcome, timed_out and outcome.killed

    async def abort_episode(self) -> None:
        """Kill the episode in flight and wait (bounded) for the worker to confirm."""
        try:
            await self._send({"cmd": "kill", "grace": 0})
            with anyio.move_on_after(KILL_GRACE_S + 3):
                await self._expect("done")
                return
        except (WorkerFailed, msgspec.DecodeError):
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

    async def kill(self) -> None:
        """SIGTERM makes a worker kill its episode tree and exit; SIGKILL if it won't.
        Its socket reaching end-of-stream is how we see it gone."""
        for sig, patience in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                return
            with anyio.move_on_after(patience):
                try:
                    while await self.stream.receive():
                        pass
                except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    return


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
    """The harness's handle on the run's zygote: the episode interpreter's first process,
    which warms TraceCore once and forks a worker per slot on request."""

    def __init__(self, process: Process, control: UNIXSocketStream, isolation: IsolationMode) -> None:
        self.process = process
        self.control = control
        self.isolation = isolation
        self._lines = BufferedByteReceiveStream(control)
        self._lock = anyio.Lock()  # one request at a time on the control socket
        self.cpu_user_s = 0.0
        self.cpu_sys_s = 0.0
        self.startup_log: Any = None

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
            raise WorkerFailed(f"cannot start {python}: {exc}") from exc
        finally:
            theirs.close()
        zygote = cls(process, await UNIXSocketStream.from_socket(ours), isolation)
        zygote.startup_log = startup_log
        try:
            await zygote._request({"cmd": "warm", "scenario": scenario}, expect="warmed", wait_ready=True)
        except WorkerFailed:
            with anyio.CancelScope(shield=True):
                await zygote.process.wait()
            reason = zygote.startup_error()
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
        return _call_decoder.decode(await self._request({"cmd": "probe", **request}, expect="done"))

    async def metrics(self, run_dir: Path, limit: int) -> CallOutcome:
        """TraceCore's metrics pipeline over ``run_dir``, in a forked child of the zygote."""
        return _call_decoder.decode(await self._request({"cmd": "metrics", "cwd": str(run_dir), "limit": limit}, expect="done"))

    async def log_to(self, path: Path) -> None:
        await self._request({"cmd": "log", "path": str(path)}, expect="logging")
        self.startup_log.close()
        self.startup_log = None

    async def _request(
        self, message: dict[str, Any], expect: str, fds: list[int] | None = None, wait_ready: bool = False
    ) -> bytes:
        async with self._lock:
            try:
                if wait_ready:
                    await self._expect("ready")
                payload = _encoder.encode(message) + b"\n"
                if fds:
                    await self.control.send_fds(payload, list(fds))
                else:
                    await self.control.send(payload)
                return await self._expect(expect)
            except (
                anyio.BrokenResourceError,
                anyio.ClosedResourceError,
                anyio.EndOfStream,
                anyio.IncompleteRead,
                OSError,
            ) as exc:
                raise WorkerFailed(f"the zygote process is gone (exit code {self.process.returncode}): {exc}") from exc

    async def _expect(self, event: str) -> bytes:
        line = await self._lines.receive_until(b"\n", MAX_LINE_BYTES)
        got = _event_decoder.decode(line).event
        if got != event:
            raise WorkerFailed(f"zygote: expected {event!r}, got {got!r}")
        return line

    async def spawn_worker(self, slot: int) -> WorkerProcess:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            line = await self._request({"cmd": "spawn", "slot": slot}, expect="spawned", fds=[theirs.fileno()])
        finally:
            theirs.close()
        worker = WorkerProcess(await UNIXSocketStream.from_socket(ours), _spawned_decoder.decode(line).pid, slot)
        await worker._expect("ready")
        return worker

    async def close(self) -> None:
        try:
            line = await self._request({"cmd": "exit"}, expect="bye")
            bye = _bye_decoder.decode(line)
            self.cpu_user_s, self.cpu_sys_s = bye.cpu_user_s, bye.cpu_sys_s
            with anyio.fail_after(5):
                await self.process.wait()
        except (WorkerFailed, TimeoutError, msgspec.DecodeError):
            if self.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
            await self.process.wait()
        finally:
            await self.control.aclose()
            await self.process.aclose()
            if self.startup_log is not None:
                self.startup_log.close()


def default_isolation() -> IsolationMode:
    return "forkserver" if hasattr(os, "fork") else "spawn"


def default_python() -> str:
    return sys.executable
