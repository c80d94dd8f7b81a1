"""The harness side of a worker (``launcher.WorkerProcess``), in-process: its socket's other
end is a scripted peer in the same event loop, speaking ``protocol``'s messages. No process
is started (and none is signalled: the paths tested never need ``kill``)."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import msgspec
import pytest
from anyio.abc import UNIXSocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from tracecore_perf.models import EpisodeJob
from tracecore_perf.run import launcher, protocol
from tracecore_perf.run.launcher import WorkerFailed, WorkerProcess

# above any pid the kernel hands out (pid_max is at most 2**22): kill and waitpid on it can
# reach no process, should a path under test ever try
NO_SUCH_PID = 2**22 + 1
JOB = EpisodeJob(episode_index=3, scenario_row=0, agent="a.py", task_ref="t@1", seed=7)
COMMANDS = msgspec.json.Decoder(protocol.Run | protocol.Kill | protocol.Exit)


class Peer:
    """The worker's end of the socket: reads commands, sends what the test scripts."""

    def __init__(self, stream: UNIXSocketStream) -> None:
        self.stream = stream
        self.lines = BufferedByteReceiveStream(stream)
        self.received: list[msgspec.Struct] = []
        self.got_run = anyio.Event()

    async def command(self) -> msgspec.Struct:
        message = COMMANDS.decode(await self.lines.receive_until(b"\n", 1 << 20))
        self.received.append(message)
        if isinstance(message, protocol.Run):
            self.got_run.set()
        return message

    async def send(self, event: msgspec.Struct | bytes) -> None:
        data = event if isinstance(event, bytes) else protocol.encoder.encode(event) + b"\n"
        await self.stream.send(data)


def _done(**fields) -> protocol.Done:
    values = {"returncode": 0, "killed": False, "cpu_user_s": 0.1, "cpu_sys_s": 0.0, "max_rss_bytes": 1, "output_bytes": 0}
    return protocol.Done(leftover_processes=0, **{**values, **fields})


def converse(
    script: Callable[[Peer], Awaitable[None]], harness: Callable[[WorkerProcess], Awaitable[object]], peers: list | None = None
) -> tuple:
    """Run the harness side against the scripted peer; returns (its result, the peer).
    ``peers`` receives the peer before the harness side starts."""
    out: dict = {}

    async def main() -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        worker = WorkerProcess(await UNIXSocketStream.from_socket(ours), pid=NO_SUCH_PID, slot=1)
        peer = Peer(await UNIXSocketStream.from_socket(theirs))
        out["peer"] = peer
        if peers is not None:
            peers.append(peer)
        async with anyio.create_task_group() as tg:

            async def play() -> None:
                try:
                    await script(peer)
                finally:
                    await peer.stream.aclose()

            tg.start_soon(play)
            try:
                out["result"] = await harness(worker)
            except Exception as exc:  # noqa: BLE001 - handed to the test
                out["error"] = exc
            finally:
                await worker.stream.aclose()

    anyio.run(main)
    return out.get("result", out.get("error")), out["peer"]


def run_episode(timeout: float = 30.0) -> Callable[[WorkerProcess], Awaitable[object]]:
    async def call(worker: WorkerProcess) -> object:
        return await worker.run_episode(
            JOB,
            agent_path="/abs/a.py",
            agent_label="a.py",
            timeout=timeout,
            scratch_root=Path("/scratch"),
            runs_dir=Path("/run/.agent_bench/runs"),
            log_path=Path("/run/logs/episode-000003.log"),
            strict_spec=True,
            output_cap=4096,
        )

    return call


def test_an_episode_is_one_run_command_answered_by_done():
    async def script(peer: Peer) -> None:
        await peer.command()
        await peer.send(_done(result={"completed": True, "episode_s": 0.2}))

    (done, timed_out), peer = converse(script, run_episode())
    assert isinstance(done, protocol.Done) and done.result == {"completed": True, "episode_s": 0.2} and not timed_out
    (run,) = peer.received
    assert run == protocol.Run(
        agent="/abs/a.py",
        agent_label="a.py",
        task_ref="t@1",
        seed=7,
        strict_spec=True,
        scratch_root="/scratch",
        runs_dir="/run/.agent_bench/runs",
        log_path="/run/logs/episode-000003.log",
        output_cap=4096,
    )


def test_at_the_timeout_the_worker_is_asked_to_kill_and_its_report_is_the_row():
    """The peer never answers the run, only the kill: the timeout path is the only way on."""

    async def script(peer: Peer) -> None:
        await peer.command()  # Run: no answer
        kill = await peer.command()
        assert isinstance(kill, protocol.Kill)
        await peer.send(_done(returncode=-15, killed=True))

    (done, timed_out), peer = converse(script, run_episode(timeout=0.01))
    assert timed_out and done.killed and done.returncode == -15
    assert peer.received[1] == protocol.Kill(grace=launcher.KILL_GRACE_S)


def test_an_episode_that_ended_on_its_own_as_the_timeout_came_is_not_timed_out():
    async def script(peer: Peer) -> None:
        await peer.command()
        await peer.command()  # the kill came too late: the episode had ended
        await peer.send(_done(killed=False))

    (done, timed_out), _ = converse(script, run_episode(timeout=0.01))
    assert not timed_out and not done.killed


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"not json\n", "sent a malformed message"),
        (b'{"event": "done", "returncode": "zero"}\n', "sent a malformed message"),
        (protocol.Bye(), "expected Done, got Bye"),
        (None, "closed its socket"),
    ],
)
def test_a_worker_that_breaks_the_protocol_fails(reply, message):
    async def script(peer: Peer) -> None:
        await peer.command()
        if reply is not None:
            await peer.send(reply)

    error, _ = converse(script, run_episode())
    assert isinstance(error, WorkerFailed) and message in str(error)


def test_a_message_over_the_line_limit_fails_the_worker(monkeypatch):
    monkeypatch.setattr(launcher, "MAX_LINE_BYTES", 64)

    async def script(peer: Peer) -> None:
        await peer.command()
        await peer.send(b"x" * 200)

    error, _ = converse(script, run_episode())
    assert isinstance(error, WorkerFailed) and "over 64 bytes" in str(error)


def test_a_worker_of_another_protocol_version_is_refused():
    async def script(peer: Peer) -> None:
        await peer.send(protocol.Ready(pid=1, protocol=protocol.PROTOCOL_VERSION + 1))

    error, _ = converse(script, WorkerProcess.greeted)
    assert isinstance(error, WorkerFailed) and "mixed installations" in str(error)


def test_cancelling_an_episode_kills_it_and_waits_for_the_report():
    """An interrupt cancels ``run_episode``: the worker gets ``Kill {grace: 0}`` and the harness
    waits for its Done before going on (the cancellation then goes on up). The peer yields to
    the event loop many times between the Kill and its Done, so a harness side that went on
    without the report would be seen doing so before the Done was sent."""
    order: list[str] = []

    async def script(peer: Peer) -> None:
        await peer.command()  # Run
        kill = await peer.command()
        order.append(f"peer got {type(kill).__name__}")
        for _ in range(50):  # the harness side runs now, if it is not waiting for the report
            await anyio.lowlevel.checkpoint()
        order.append("peer sent Done")
        await peer.send(_done(returncode=-15, killed=True))

    async def cancelled(worker: WorkerProcess) -> None:
        async def episode() -> None:
            try:
                await run_episode()(worker)
            except anyio.get_cancelled_exc_class():
                order.append("episode cancelled")
                raise
            order.append("episode returned")

        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(episode)
                await peers[0].got_run.wait()  # the episode is in flight
                scope.cancel()
        order.append("harness went on")

    peers: list[Peer] = []
    result, peer = converse(script, cancelled, peers)
    assert result is None, result  # no error
    assert peer.received[1:] == [protocol.Kill(grace=0)]  # one kill, nothing after it
    assert order == ["peer got Kill", "peer sent Done", "episode cancelled", "harness went on"]


def test_closing_a_worker_collects_its_cpu_time():
    async def script(peer: Peer) -> None:
        assert isinstance(await peer.command(), protocol.Exit)
        await peer.send(protocol.Bye(cpu_user_s=1.5, cpu_sys_s=0.25))

    async def close(worker: WorkerProcess) -> tuple[float, float]:
        await worker.close()
        return worker.cpu_user_s, worker.cpu_sys_s

    result, _ = converse(script, close)
    assert result == (1.5, 0.25)


# --- instruction mode: the workers' own counts, written as they exit ---------------------------


@pytest.mark.slow
def test_the_wait_for_exiting_workers_lasts_while_they_work_and_gives_up_on_a_stopped_one():
    """A worker writing its count at exit is waited for as long as it uses CPU, however long
    a loaded host makes that (here three times the quiet time it is allowed); one that is
    stopped (no CPU) is given up on, not waited for."""
    import signal
    import subprocess
    import sys

    from conftest import wait_for

    burn = "import time\nend = time.process_time() + 3\nwhile time.process_time() < end: pass"
    busy = subprocess.Popen([sys.executable, "-c", burn])
    stopped = subprocess.Popen([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSTOP)"])
    try:
        anyio.run(launcher._exited, [busy.pid], 1.0)
        assert busy.poll() is not None, "the wait ended while the worker was still working"
        wait_for(lambda: _state(stopped.pid) in ("T", "t"), proc=stopped, what="the process to stop itself")
        anyio.run(launcher._exited, [stopped.pid], 1.0)
        assert stopped.poll() is None, "a stopped process cannot have exited"
    finally:
        for process in (busy, stopped):
            if process.poll() is None:
                process.kill()
                process.send_signal(signal.SIGCONT)
            process.wait()


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


@pytest.mark.slow
@pytest.mark.parametrize("then", ["answers and stays", "answers and exits", "stops"])
def test_a_worker_s_answer_is_awaited_while_it_works_not_for_a_fixed_time(then):
    """The goodbye a worker sends as it closes: awaited however long its work before it takes
    (three times the quiet time it is allowed), read even if it exited right after sending it;
    a worker that stops (no CPU) is given up on with TimeoutError."""
    import sys

    burn = "import os, signal, sys, time\nend = time.process_time() + 3\nwhile time.process_time() < end: pass\n"
    tail = {
        "answers and stays": "print('bye', flush=True)\ntime.sleep(3600)",
        "answers and exits": "print('bye', flush=True)",
        "stops": "os.kill(os.getpid(), signal.SIGSTOP)",
    }[then]

    async def scenario() -> str:
        process = await anyio.open_process([sys.executable, "-c", burn + tail])
        try:
            assert process.stdout is not None
            return (await launcher._answer_while_working(process.pid, 1.0, process.stdout.receive)).decode().strip()
        finally:
            process.kill()
            await process.wait()

    if then == "stops":
        with pytest.raises(TimeoutError, match="gave no answer"):
            anyio.run(scenario)
    else:
        assert anyio.run(scenario) == "bye"
