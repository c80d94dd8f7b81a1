"""The launcher: one worker process per worker slot, and episodes run through them.

A :class:`WorkerProcess` is the harness's handle on one ``episode_worker.py serve``
process. ``run_episode`` sends a job, waits for the outcome under the per-episode timeout,
and on timeout asks the worker to kill the episode's whole process tree (SIGTERM, then
SIGKILL after a grace period). If the worker itself stops answering, it is killed and
replaced, and the episode is recorded as lost to a worker failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import msgspec
from anyio.abc import Process
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
    def __init__(self, process: Process, slot: int, isolation: IsolationMode) -> None:
        self.process = process
        self.slot = slot
        self.isolation = isolation
        self._lines = BufferedByteReceiveStream(process.stdout)
        self.cpu_user_s = 0.0
        self.cpu_sys_s = 0.0

    @classmethod
    async def start(
        cls,
        python: str,
        isolation: IsolationMode,
        slot: int,
        stderr_path: Path,
        scenario: list[dict[str, Any]] | None = None,
    ) -> WorkerProcess:
        with open(stderr_path, "ab") as stderr:
            process = await anyio.open_process(
                [python, str(WORKER_SCRIPT), "serve", isolation, str(os.getpid())],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,  # a terminal's Ctrl-C is the harness's to handle
            )
        worker = cls(process, slot, isolation)
        await worker._expect("ready")
        if isolation == "forkserver" and scenario is not None:
            await worker._send({"cmd": "warm", "scenario": scenario})
            await worker._expect("warmed")
        return worker

    @property
    def pid(self) -> int:
        return self.process.pid

    async def _send(self, message: dict[str, Any]) -> None:
        try:
            await self.process.stdin.send(_encoder.encode(message) + b"\n")
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise WorkerFailed(f"worker {self.slot} is gone: {exc}") from exc

    async def _receive(self) -> bytes:
        try:
            return await self._lines.receive_until(b"\n", MAX_LINE_BYTES)
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError) as exc:
            raise WorkerFailed(f"worker {self.slot} closed its pipe (exit code {self.process.returncode})") from exc

    async def _expect(self, event: str) -> bytes:
        line = await self._receive()
        got = _event_decoder.decode(line).event
        if got != event:
            raise WorkerFailed(f"worker {self.slot}: expected {event!r}, got {got!r}")
        return line

    async def call(self, command: dict[str, Any]) -> CallOutcome:
        """Run a probe or metrics request in a forked child of this worker."""
        await self._send(command)
        return _call_decoder.decode(await self._expect("done"))

    async def run_episode(
        self,
        job: EpisodeJob,
        *,
        timeout: float,
        cwd: Path,
        log_path: Path,
        strict_spec: bool,
        output_cap: int,
    ) -> tuple[EpisodeOutcome, bool]:
        """Run one episode. Returns the outcome and whether the harness timed it out."""
        await self._send(
            {
                "cmd": "run",
                "agent": job.agent,
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
                line = await self._receive()
            bye = msgspec.json.decode(line)
            self.cpu_user_s, self.cpu_sys_s = bye.get("cpu_user_s", 0.0), bye.get("cpu_sys_s", 0.0)
            with anyio.fail_after(5):
                await self.process.wait()
        except (WorkerFailed, TimeoutError, msgspec.DecodeError):
            await self.kill()
        finally:
            await self.process.aclose()

    async def kill(self) -> None:
        """SIGTERM makes the worker kill its episode tree and exit; SIGKILL if it won't."""
        if self.process.returncode is not None:
            return
        try:
            self.process.send_signal(signal.SIGTERM)
            with anyio.move_on_after(2):
                await self.process.wait()
                return
            self.process.kill()
            await self.process.wait()
        except ProcessLookupError:
            pass


def default_isolation() -> IsolationMode:
    return "forkserver" if hasattr(os, "fork") else "spawn"


def default_python() -> str:
    return sys.executable
