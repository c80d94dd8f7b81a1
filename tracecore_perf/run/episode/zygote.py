"""The zygote, and the fork loop every process of the episode interpreter lives in.

One zygote process per run (``episode_process.py zygote ...``) warms TraceCore once and
forks one worker per worker slot (``worker.py``). The harness talks to the zygote and to each
worker over Unix sockets in JSON lines: the messages are ``tracecore_perf/run/protocol.py``'s
Structs, built and read here as plain dicts (``tests/test_protocol.py`` holds the two sides
together), and both roles greet with ``constants.PROTOCOL_VERSION``. For every episode the
worker forks one child process that runs exactly one episode and exits:

- ``forkserver``: the zygote imported and warmed TraceCore; the child runs ``run()`` directly.
- ``spawn``: the child execs a fresh interpreter (``episode_process.py episode ...``).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import time

from .callgrind import calibrate
from .constants import CALLGRIND_DIR_ENV, EXIT_CHILD_SETUP_FAILED, RESULT_FD
from .episode import finish as finish  # what episode_process.py calls once an episode's run() is over
from .probe import check_agent, metrics, probe
from .role import Role
from .spec import warm_verdict
from .state import load_sandbox, side
from .system import PR_SET_CHILD_SUBREAPER, children, die_with_parent, prctl, run_folder, write_all
from .warmup import as_tracecore_runs, forget_episode_side, harness_imports, rehearse, warm, warm_runtime
from .worker import Worker

# --- the process roles -------------------------------------------------------------------
#
# Every fork happens in serve()'s loop; an episode process returns from it, so TraceCore's
# run() is called from episode_process.py's short module frame with nothing of ours above
# it. TraceCore's sandbox guard calls inspect.stack() on every file access, and each frame
# under it costs instructions on every call. A role (the zygote, a worker) answers its
# commands and says what to fork next.


class WorkerFork:
    """What the zygote asks the fork loop to fork: a worker, serving the harness on ``channel``."""

    def __init__(self, channel: int) -> None:
        self.channel = channel


def fork_call(function, request: dict) -> dict:
    """``function(request)`` in a forked child, in ``request["cwd"]``, so the zygote stays
    exactly as it was. Answers like an episode: returncode, result, result_error."""
    result_r, result_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(result_r)
            os.chdir(request.get("cwd") or ".")
            write_all(result_w, json.dumps(function(request), default=str).encode("utf-8"))
        except BaseException:  # noqa: BLE001 - report on stderr, never return into the zygote
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(result_w)
    # An agent's module runs here (the probe loads it): bounded, like everything else.
    deadline = time.monotonic() + float(request.get("deadline_s", 120))
    chunks: list[bytes] = []
    size = 0
    timed_out = False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([result_r], [], [], remaining)[0]:
            timed_out = True
            break
        chunk = os.read(result_r, 65536)
        if not chunk:
            break
        size += len(chunk)
        if size <= 64 * 1024 * 1024:
            chunks.append(chunk)
    os.close(result_r)
    if timed_out:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    answer = {"event": "call_done", "returncode": os.waitstatus_to_exitcode(status), "result": None}
    if timed_out:
        answer["result_error"] = f"no answer within {request.get('deadline_s', 120)} s"
    elif chunks:
        try:
            answer["result"] = json.loads(b"".join(chunks))
        except ValueError as exc:
            answer["result_error"] = f"unreadable answer: {exc}"
    return answer


class Zygote(Role):
    """The first process of a run's episode interpreter: it warms TraceCore once (forkserver)
    and forks one :class:`Worker` per worker slot when the harness asks, handing each the
    socket the harness sent along. Workers are born warm; the warm-up is paid once per run
    instead of once per slot."""

    def __init__(self, isolation: str, control) -> None:
        self.isolation = isolation
        self.control = control  # socket.socket: JSON lines, with file descriptors attached
        self.workers: set[int] = set()
        self.inbox = b""
        self.fds: list[int] = []

    def send(self, message: dict) -> None:
        self.control.sendall(json.dumps(message).encode("utf-8") + b"\n")

    def receive(self) -> tuple[dict, list[int]]:
        import socket

        while b"\n" not in self.inbox:
            ready = select.select([self.control], [], [], 1.0)[0]
            self.reap()
            if not ready:
                continue
            data, fds, _, _ = socket.recv_fds(self.control, 65536, 8)
            if not data:  # the harness is gone
                return {"cmd": "exit"}, []
            self.inbox += data
            self.fds += fds
        line, self.inbox = self.inbox.split(b"\n", 1)
        fds, self.fds = self.fds, []
        return json.loads(line), fds

    def reap(self) -> None:
        """Collect exited workers; kill anything else re-parented to us (a subreaper), so
        no stray process outlives the run."""
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            self.workers.discard(pid)
        # Killing one re-parents its own children to us: repeat until none is left.
        while strays := [kid for kid in children() if kid not in self.workers]:
            for kid in strays:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(kid, signal.SIGKILL)
            for kid in strays:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(kid, 0)

    def become_worker(self, fork: WorkerFork, zygote_pid: int) -> Worker:
        """In the forked child: drop the zygote's socket, become the worker of one slot."""
        self.control.close()
        worker = Worker(self.isolation, fork.channel)
        # A process group of its own: an episode that stops or kills the zygote's group
        # reaches no other slot's worker.
        os.setpgid(0, 0)
        signal.signal(signal.SIGTERM, worker.on_terminate)
        # A worker dies with its zygote (SIGTERM: it takes its episode's tree with it), so it
        # is never re-parented to the harness, where its episode's "kill my grandparent"
        # would reach the harness. The harness runs again, alone, an episode lost this way.
        die_with_parent(signal.SIGTERM, zygote_pid)
        prctl(PR_SET_CHILD_SUBREAPER, 1)
        return worker

    def adopt(self, pid: int, fork: WorkerFork) -> None:
        """In the zygote, once a worker is forked: its socket is its own now."""
        os.close(fork.channel)
        self.workers.add(pid)
        self.send({"event": "spawned", "pid": pid})

    def stop_workers(self, wait: bool) -> None:
        """SIGTERM (and SIGCONT, in case an episode stopped one) to every worker; with
        ``wait``, reap them, and SIGKILL whatever has not gone within a few seconds."""
        for pid in list(self.workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
                os.kill(pid, signal.SIGCONT)
        if not wait:
            return
        deadline = time.monotonic() + 3
        while self.workers:
            for pid in list(self.workers):
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    done = pid
                if done:
                    self.workers.discard(pid)
            if self.workers and time.monotonic() > deadline:
                for pid in self.workers:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                deadline = float("inf")
            if self.workers:
                time.sleep(0.01)

    def on_terminate(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
        self.stop_workers(wait=False)  # each worker kills its episode tree on SIGTERM
        os._exit(128 + signum)

    def next_fork(self) -> WorkerFork | None:
        """Answer commands until one needs a worker forked; None means exit."""
        self.greet_once()
        while True:
            command, fds = self.receive()
            kind = command.get("cmd")
            if kind == "spawn" and fds:
                for fd in fds[1:]:
                    os.close(fd)
                sys.stdout.flush()
                sys.stderr.flush()
                return WorkerFork(fds[0])
            for fd in fds:
                os.close(fd)
            if kind == "warm":
                if self.isolation == "forkserver":
                    warm(command.get("scenario", []))
                self.send({"event": "warmed"})
            elif kind == "rehearse":
                failures = rehearse(command)
                # agent code ran here: put back what the zygote relies on
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, self.on_terminate)
                self.send({"event": "rehearsed", "failures": failures})
            elif kind == "reap":  # receive() has just reaped: nothing of an episode's is left
                self.send({"event": "reaped"})
            elif kind in ("probe", "metrics"):
                self.send(fork_call(probe if kind == "probe" else metrics, command))
            elif kind == "log":
                # from now on our stdout/stderr (inherited by workers) go to the run's log; never
                # through a link or into a FIFO planted at its name (an earlier attempt's episode)
                flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK
                logs = os.path.dirname(command["path"])
                try:
                    folder = run_folder(os.path.dirname(logs), (os.path.basename(logs),))  # no link below the run
                    try:
                        fd = os.open(os.path.basename(command["path"]), flags, 0o644, dir_fd=folder)
                    finally:
                        os.close(folder)
                except OSError:
                    fd = os.open(os.devnull, os.O_WRONLY)
                os.set_blocking(fd, True)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                os.close(fd)
                self.send({"event": "logging"})
            elif kind == "exit":
                self.stop_workers(wait=True)
                self.bye()
                return None


def serve(argv: list[str]) -> dict:
    """The life of a process of the episode interpreter, from its command line. Returns only
    in an episode process, with its job (the Run command), for episode_process.py to run it;
    every other role ends in here.

    ``[script, "zygote", isolation, harness_pid]`` (stdin: a Unix socket to the harness):
    the zygote, which forks workers, which fork episode processes, in the loop below; a
    forked process carries on from where it was forked. ``[script, "episode", job,
    result_fd]``: a spawned episode interpreter, exec'd by a worker. ``[script,
    "check-agent", job]``: the check of one agent file (:func:`check_agent`), started by the
    harness, not by the zygote."""
    if argv[1] == "episode":
        forget_episode_side()
        return json.loads(argv[2])
    if argv[1] == "check-agent":
        check_agent(json.loads(argv[2]))
    role: Zygote | Worker = start(argv)
    zygote = role
    while (fork := role.next_fork()) is not None:
        parent_pid = os.getpid()
        pid = os.fork()
        if pid:  # the role that asked goes on
            if isinstance(fork, WorkerFork):
                zygote.adopt(pid, fork)
            else:
                role.supervise(pid, fork)
            continue
        try:
            if isinstance(fork, WorkerFork):
                role = zygote.become_worker(fork, parent_pid)
                continue
            role.become_episode(fork, parent_pid)
            as_tracecore_runs()
            if zygote.isolation == "spawn":
                script = os.path.abspath(argv[0])
                os.execv(sys.executable, [sys.executable, script, "episode", json.dumps(fork.job), str(RESULT_FD)])
            return fork.job  # the episode process: episode_process.py runs it
        except BaseException:  # noqa: BLE001 - nothing may escape a forked child
            import traceback

            traceback.print_exc()
            sys.stderr.flush()
            os._exit(EXIT_CHILD_SETUP_FAILED)
    # Told to exit: skip the interpreter's teardown (tens of ms of freeing TraceCore's
    # modules, which the harness would wait for).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def start(argv: list[str]) -> Zygote:
    """Set up the zygote (argv = [.., "zygote", isolation, harness_pid]; stdin is a Unix
    socket to the harness) and return it for :func:`serve`'s fork loop."""
    isolation, harness_pid = argv[2], int(argv[3])
    side.callgrind_dir = os.environ.pop(CALLGRIND_DIR_ENV, None)  # episodes need not see it
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the harness decides what Ctrl-C means
    if isolation == "forkserver":
        # TraceCore's imports first, so what the harness imports for itself after them is
        # known as the harness's (harness_imports); the harness is importing meanwhile.
        warm_runtime()
    with harness_imports():
        import socket

        control = socket.socket(fileno=os.dup(0))
        zygote = Zygote(isolation, control)
        signal.signal(signal.SIGTERM, zygote.on_terminate)
        die_with_parent(signal.SIGTERM, harness_pid)  # checks that the harness still lives
        prctl(PR_SET_CHILD_SUBREAPER, 1)
        warm_verdict()
        if side.callgrind_dir is not None:
            with contextlib.suppress(OSError):  # the probe reports a host that refuses the filter
                side.single_process_filter = load_sandbox().single_process_filter()
            side.counted_rate = calibrate()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return zygote
