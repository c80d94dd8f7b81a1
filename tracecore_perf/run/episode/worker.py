"""A worker: one per worker slot, forked by the zygote. For each ``run`` command it asks the
fork loop (``zygote.serve``) for one episode process, sets that process up
(``become_episode``), and supervises it to its end (``supervise``): its output captured up
to a cap, its report checked and its artifact placed, killed on the harness's request, the
kernel's accounting of it, whatever it left behind killed (a worker is a child subreaper).
The harness owns the policy (when to kill)."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import signal
import stat
import sys
import tempfile
import time

from .artifact import forget_placed, take_back_placed
from .callgrind import copy_profile, episode_instructions, forget_count, implausible_count
from .capped_log import CappedLog
from .constants import RESULT_CAP_BYTES, RESULT_FD
from .episode import bound_memory, check_report
from .role import Role
from .state import forbid_new_processes, load_sandbox, side
from .system import children, die_with_parent, fd_limit, remove_tree, sigterm_held, write_all


class EpisodeFork:
    """What a worker asks the fork loop to fork: the process of one episode (``job``: the Run
    command), working in ``scratch``, reporting on one pipe and printing into another."""

    def __init__(self, job: dict, scratch: str) -> None:
        self.job = job
        self.scratch = scratch
        self.result_r, self.result_w = os.pipe()
        self.output_r, self.output_w = os.pipe()


def keep_python_profile(scratch: str, keep_to: str, folder_id: list[int] | None) -> str | None:
    """The folded stacks a traced replay wrote into its scratch folder (pyprofile.py), copied
    to ``keep_to``; their SHA-256, or None when there were none to copy (a regular file)."""
    from .pyprofile import PYTHON_PROFILE

    try:
        fd = os.open(os.path.join(scratch, PYTHON_PROFILE), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return copy_profile(fd, keep_to, folder_id)
    finally:
        os.close(fd)


class Worker(Role):
    """One per worker slot: forks one episode process per ``run`` command and supervises it."""

    def __init__(self, isolation: str, channel: int) -> None:
        self.isolation = isolation
        self.channel = channel  # a Unix socket to the harness, both directions
        self.inbox = b""
        self.current_pgid: int | None = None

    # protocol ---------------------------------------------------------------------------
    def send(self, message: dict) -> None:
        write_all(self.channel, json.dumps(message).encode("utf-8") + b"\n")

    def read_command(self, block: bool) -> dict | None:
        while b"\n" not in self.inbox:
            if not block and not select.select([self.channel], [], [], 0)[0]:
                return None
            chunk = os.read(self.channel, 65536)
            if not chunk:  # the harness closed our socket: it is gone or done
                return {"cmd": "exit"}
            self.inbox += chunk
        line, self.inbox = self.inbox.split(b"\n", 1)
        return json.loads(line)

    # lifecycle --------------------------------------------------------------------------
    def on_terminate(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
        """Our parent died (PDEATHSIG) or we were told to stop: take the episode with us, and
        the artifact of an episode whose row the harness never got (it runs again, or not)."""
        self.kill_tree(signal.SIGKILL)
        self.kill_leftovers()
        take_back_placed()
        os._exit(128 + signum)

    def next_fork(self) -> EpisodeFork | None:
        """Answer commands until one needs an episode process; None means exit."""
        self.greet_once()
        while True:
            command = self.read_command(block=True)
            kind = command.get("cmd")
            if kind == "run":
                # A fresh working directory per episode, outside the run directory: nothing
                # one episode leaves in its cwd is seen by another.
                scratch = tempfile.mkdtemp(prefix="ep-", dir=command.get("scratch_root"))
                if command.get("sandbox"):
                    load_sandbox()  # loaded here, once per worker: its episodes inherit it
                sys.stdout.flush()
                sys.stderr.flush()
                return EpisodeFork(command, scratch)
            if kind == "exit":
                self.bye()
                return None
            # a "kill" that arrives while idle is for an episode that already ended

    def become_episode(self, fork: EpisodeFork, worker_pid: int) -> None:
        """In the forked child: its own process group, dies with the worker, default
        signals, output into the capture pipe, the result pipe at fd 3 and no other
        descriptor of ours, its scratch directory as working directory."""
        os.setpgid(0, 0)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        die_with_parent(signal.SIGKILL, worker_pid)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fork.output_w, 1)
        os.dup2(fork.output_w, 2)
        os.dup2(fork.result_w, RESULT_FD)
        os.closerange(RESULT_FD + 1, fd_limit())
        os.chdir(fork.scratch)
        bound_memory(fork.job.get("memory_limit"))
        if fork.job.get("sandbox"):  # returns only in the sandboxed episode
            load_sandbox().enter(
                fork.scratch, fork.job.get("scratch_root") or os.path.dirname(fork.scratch), fork.job.get("sandbox_hidden") or []
            )
        # one process, counted whole (sandbox.forbid_new_processes); natively too in an
        # instruction run, so a native episode can do no work a counted one could not
        if side.callgrind_dir is not None or fork.job.get("single_process"):
            forbid_new_processes()
        if fork.job.get("trace_python"):  # a replay for explain's Python names (episode.finish writes them)
            from .pyprofile import BytecodeTracer

            side.python_trace = BytecodeTracer()
            side.python_trace.start()

    def supervise(self, pid: int, fork: EpisodeFork) -> None:
        """In the worker, once the episode process is forked: watch it to its end, clean up
        after it, check what it reported, and send the harness its ``done``."""
        self.current_pgid = pid
        # the episode makes its own group too (become_episode); made here as well, a kill that
        # comes before the child got that far (a very short timeout) still finds the group
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)
        forget_count(pid)
        os.close(fork.result_w)
        os.close(fork.output_w)
        report = bytearray()
        output = CappedLog(fork.job.get("log_path"), int(fork.job.get("output_cap", 1024 * 1024)))
        streams = {fork.result_r: report, fork.output_r: output}
        status, usage, killed = self._watch(pid, streams, fork.scratch)
        ended_at = time.time()
        # The episode is over: nothing it started may outlive it (nor touch its count).
        self.kill_tree(signal.SIGKILL)
        leftovers, extra_user, extra_sys, extra_faults = self.kill_leftovers()
        self.current_pgid = None
        keep_to, folder_id = fork.job.get("profile_path"), fork.job.get("profile_dir")
        instructions, count_error, profile_sha256 = episode_instructions(pid, ended_at, keep_to, folder_id)
        if fork.job.get("trace_python") and keep_to and not killed and os.waitstatus_to_exitcode(status) == 0:
            profile_sha256 = keep_python_profile(fork.scratch, keep_to, folder_id)
        for fd in list(streams):  # every writer is dead now, so these reach EOF
            while chunk := os.read(fd, 65536):
                append(streams[fd], chunk)
            os.close(fd)
        output.close()
        # SIGTERM (the zygote died) is held while an artifact is placed and while its row is
        # sent: the handler takes back an artifact the harness has no row for, and must find
        # exactly that one (never a file placed a moment before it knew, nor one just reported).
        with sigterm_held():
            checked = check_report(report, fork.job)
        if instructions is not None and (checked.get("artifact") or {}).get("success"):
            count_error = implausible_count(instructions, usage.ru_utime)
        if count_error:
            instructions = None  # never a figure
        message = {
            "event": "done",
            "returncode": os.waitstatus_to_exitcode(status),
            "killed": killed,
            "cpu_user_s": usage.ru_utime + extra_user,
            "cpu_sys_s": usage.ru_stime + extra_sys,
            "max_rss_bytes": usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024),
            "minor_faults": usage.ru_minflt + extra_faults,
            "output_bytes": output.total,
            "leftover_processes": leftovers,
            "instructions": instructions,
            "count_error": count_error if side.callgrind_dir is not None else None,
            "profile_sha256": profile_sha256,
            **checked,
        }
        del report
        remove_tree(fork.scratch)
        with sigterm_held():
            self.send(message)
            forget_placed()

    def _watch(self, pid: int, streams: dict, scratch: str) -> tuple[int, resource.struct_rusage, bool]:
        """Until the episode process exits: drain its output and report, and obey the
        harness (``kill``: SIGTERM now, SIGKILL after the grace; ``exit``: the harness is
        going away, so kill everything and go). Returns its wait status, the kernel's
        accounting of it and whether it was killed on request."""
        killed = False
        kill_deadline: float | None = None
        try:
            pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):  # no pidfd here (under Valgrind 3.19: ENOSYS)
            pidfd = None
        try:
            while True:
                watch = [self.channel, *streams] + ([pidfd] if pidfd is not None else [])
                timeout = 0.05 if pidfd is None else None  # no pidfd: poll the child
                if kill_deadline is not None:
                    remaining = max(kill_deadline - time.monotonic(), 0)
                    timeout = remaining if timeout is None else min(timeout, remaining)
                # A command read with the run's (a kill sent right after it: a timeout shorter
                # than the fork) waits in the inbox, where select cannot see it.
                queued = b"\n" in self.inbox
                ready, _, _ = select.select(watch, [], [], 0 if queued else timeout)
                if queued or self.channel in ready:
                    command = self.read_command(block=False) or {}
                    if command.get("cmd") == "kill" and not killed:
                        killed = True
                        self.kill_tree(signal.SIGTERM)
                        kill_deadline = time.monotonic() + float(command.get("grace", 1.0))
                    elif command.get("cmd") == "exit":
                        self.kill_tree(signal.SIGKILL)
                        self.kill_leftovers()
                        remove_tree(scratch)
                        os._exit(0)
                for fd in [fd for fd in ready if fd in streams]:
                    chunk = os.read(fd, 65536)
                    if chunk:
                        append(streams[fd], chunk)
                    else:
                        os.close(fd)
                        del streams[fd]
                if kill_deadline is not None and time.monotonic() >= kill_deadline:
                    self.kill_tree(signal.SIGKILL)
                    kill_deadline = None
                if pidfd is None or pidfd in ready:
                    waited, status, usage = os.wait4(pid, 0 if pidfd is not None else os.WNOHANG)
                    if waited == pid:
                        return status, usage, killed
        finally:
            if pidfd is not None:
                os.close(pidfd)

    def kill_tree(self, sig: int) -> None:
        """Signal the episode's process group; SIGCONT after a SIGTERM, since a stopped
        process only acts on it once continued (SIGKILL needs no help)."""
        if self.current_pgid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.current_pgid, sig)
            if sig != signal.SIGKILL:
                os.killpg(self.current_pgid, signal.SIGCONT)

    @staticmethod
    def kill_leftovers() -> tuple[int, float, float, int]:
        """Kill and reap every process re-parented to us (we are a subreaper), repeating
        until none is left, since killing one re-parents its own children to us."""
        count, user, system, faults = 0, 0.0, 0.0, 0
        while kids := children():
            for kid in kids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(kid, signal.SIGKILL)
            for kid in kids:
                try:
                    _, _, usage = os.wait4(kid, 0)
                except ChildProcessError:
                    continue
                count += 1
                user += usage.ru_utime
                system += usage.ru_stime
                faults += usage.ru_minflt
        return count, user, system, faults


def append(sink, chunk: bytes) -> None:
    if isinstance(sink, bytearray):
        if len(sink) < RESULT_CAP_BYTES:
            sink.extend(chunk)
    else:
        sink.write(chunk)
