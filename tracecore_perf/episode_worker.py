"""The worker process: runs under the episode interpreter, one per worker slot.

This file is executed by path (``python episode_worker.py zygote ...``) and depends only on
the standard library and ``agent_bench``, so ``--python`` can point at any interpreter
that has TraceCore installed and nothing of ours.

One zygote process per run (``episode_worker.py zygote ...``) warms TraceCore once and
forks one worker per worker slot. The harness talks to the zygote and to each worker over
Unix sockets in JSON lines. For every episode the worker forks one child process that runs
exactly one episode and exits:

- ``forkserver``: the zygote imported and warmed TraceCore; the child runs ``run()`` directly.
- ``spawn``: the child execs a fresh interpreter (``episode_worker.py episode ...``).

The worker owns the mechanism around each child: its own process group, death with its
parent (PR_SET_PDEATHSIG), capped capture of its output, the result pipe, killing the
whole tree on request, and the kernel's accounting of it (``wait4``). It is a child
subreaper, so processes an episode leaves behind are re-parented here and killed when the
episode ends. The harness owns the policy (when to kill).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import signal
import sys
import time

# Running by path puts this file's folder on sys.path; nothing here should import from it.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
RESULT_CAP_BYTES = 4 * 1024 * 1024
EXIT_CHILD_SETUP_FAILED = 70


def _prctl(option: int, value: int) -> bool:
    """Linux prctl(2); a no-op elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(option, value, 0, 0, 0) == 0


def _die_with_parent(sig: int, parent_pid: int) -> None:
    _prctl(PR_SET_PDEATHSIG, sig)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os.kill(os.getpid(), sig)


# --- inside the episode process ----------------------------------------------------------


def _telemetry(artifact: dict) -> dict:
    """Artifact size and LLM telemetry volume, counted as TraceCore's metrics module does:
    ``llm_trace`` entries of each action-trace step, prompt/completion bytes, tokens."""
    entries = prompt = completion = tokens = 0
    for step in artifact.get("action_trace") or []:
        if not isinstance(step, dict):
            continue
        for call in step.get("llm_trace") or []:
            if not isinstance(call, dict):
                continue
            entries += 1
            request = call.get("request") or {}
            response = call.get("response") or {}
            if isinstance(request.get("prompt"), str):
                prompt += len(request["prompt"].encode("utf-8"))
            if isinstance(response.get("completion"), str):
                completion += len(response["completion"].encode("utf-8"))
            if isinstance(response.get("tokens_used"), int):
                tokens += response["tokens_used"]
    return {
        "artifact_bytes": len(str(artifact).encode("utf-8")),
        "llm_trace_entries": entries,
        "prompt_bytes": prompt,
        "completion_bytes": completion,
        "tokens_used": tokens,
    }


def run_episode(job: dict) -> dict:
    """Run one TraceCore episode in this process (cwd is the run directory) and persist
    its artifact to ``.agent_bench/runs``. Returns the ChildResult fields."""
    from agent_bench.runner.runlog import persist_run
    from agent_bench.runner.runner import run

    start = time.perf_counter()
    try:
        artifact = run(job["agent"], job["task_ref"], int(job["seed"]))
    except BaseException as exc:  # an agent may raise anything, SystemExit included
        return {
            "completed": False,
            "episode_s": time.perf_counter() - start,
            "error": f"{type(exc).__name__}: {exc}",
        }
    episode_s = time.perf_counter() - start
    persist_run(artifact)
    result = {
        "completed": True,
        "episode_s": episode_s,
        "success": bool(artifact.get("success")),
        "run_id": artifact.get("run_id"),
        "failure_type": artifact.get("failure_type"),
        "failure_reason": artifact.get("failure_reason"),
        **_telemetry(artifact),
    }
    if job.get("strict_spec"):
        from agent_bench.runner.spec_check import check_spec_compliance

        result["spec_errors"] = list(check_spec_compliance(artifact)["errors"])
    return result


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# --- probe and metrics: run in a forked child so the worker stays clean ------------------


def probe(request: dict) -> dict:
    """Resolve every agent and task ref of the scenario, and name this interpreter."""
    import re
    from importlib import metadata

    from agent_bench.agent.loader import AGENTS_PACKAGE_ROOT, PACKAGE_ROOT
    from agent_bench.tasks.registry import get_task_descriptor

    agents: dict[str, dict] = {}
    for path in request.get("agents", []):
        candidates = [
            (os.path.join(request["cwd"], path), True),  # the user's own file
            (str(PACKAGE_ROOT / path), False),  # as TraceCore's loader resolves it
            (str(AGENTS_PACKAGE_ROOT / os.path.basename(path)), False),
        ]
        found = next(((c, own) for c, own in candidates if os.path.isfile(c)), None)
        if found is None:
            agents[path] = {"ok": False, "error": "no such agent file (not a file, nor a TraceCore agent)"}
        else:
            # A user's file is passed by absolute path, since episodes run in the run dir;
            # a packaged agent keeps the name the user gave, so metrics group by it.
            agents[path] = {"ok": True, "resolved": os.path.abspath(found[0]) if found[1] else path}

    tasks: dict[str, dict] = {}
    for ref in request.get("task_refs", []):
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(?:@(\d+))?", ref)
        if not match:
            tasks[ref] = {"ok": False, "error": "malformed task ref (expected <task_id>@<version>)"}
            continue
        version = int(match.group(2)) if match.group(2) else None
        try:
            descriptor = get_task_descriptor(match.group(1), version)
        except Exception as exc:  # a broken plugin registry is the user's problem to see
            tasks[ref] = {"ok": False, "error": f"task registry failed: {exc}"}
            continue
        tasks[ref] = {"ok": True} if descriptor else {"ok": False, "error": "no installed task of that name and version"}

    try:
        version = metadata.version("tracecore")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {
        "executable": sys.executable,
        "python_version": sys.version.split()[0],
        "tracecore_version": version,
        "agents": agents,
        "tasks": tasks,
    }


def metrics(request: dict) -> dict:
    """TraceCore's own metrics pipeline over exactly this run's artifacts (cwd = run dir)."""
    from agent_bench.runner.metrics import compute_all_metrics

    return {"rows": compute_all_metrics(limit=max(int(request.get("limit", 1)), 1))}


def warm(scenario: list[dict]) -> None:
    """Pay once, in the zygote, what every forked child would otherwise pay: imports,
    the task registry, jsonschema's validator machinery. No agent code runs here."""
    import agent_bench.runner.runlog  # noqa: F401
    import agent_bench.runner.runner  # noqa: F401
    from agent_bench.runner.spec_check import check_spec_compliance
    from agent_bench.tasks.loader import load_task

    check_spec_compliance({})
    sources: set[str] = set()
    for row in scenario:
        try:
            task_id, _, version = row["task_ref"].partition("@")
            task = load_task(task_id, int(version) if version else None)
        except Exception:  # noqa: BLE001 - a bad row is reported by the probe, not here
            continue
        if task.get("path"):
            sources.update(str(p) for p in task["path"].glob("*.py"))
        if os.path.isfile(row.get("agent", "")):
            sources.add(row["agent"])
    # TraceCore's sandbox guard calls inspect.stack() on every file access, which reads
    # source through linecache and maps files to modules through inspect's caches. A
    # forked child inherits those caches; a cold one costs it ~15 ms per episode.
    import inspect
    import linecache

    import agent_bench

    package_root = os.path.dirname(agent_bench.__file__)
    for folder, _, files in os.walk(package_root):
        sources.update(os.path.join(folder, name) for name in files if name.endswith(".py"))
    for path in sources:
        linecache.getlines(path)
    inspect.stack()
    import gc

    gc.collect()
    gc.freeze()  # keep the server's objects out of the children's collections (fewer page copies)


# --- the process roles -------------------------------------------------------------------
#
# Every fork happens in main()'s loop, so a forked process carries on from main()'s frame:
# an episode runs only two frames below the module. TraceCore's sandbox guard calls
# inspect.stack() on every file access, and each frame above run() costs it ~1.5 ms per
# episode. A role (the zygote, a worker) answers its commands and says what to fork next.


class ForkRequest:
    """What a role wants forked: a worker (the zygote) or an episode process (a worker)."""

    def __init__(self, kind: str, **fields) -> None:
        self.kind = kind
        self.__dict__.update(fields)


class _Role:
    """What the zygote and a worker share: they greet the harness once, then take commands."""

    greeted = False

    def send(self, message: dict) -> None:
        raise NotImplementedError

    def greet_once(self) -> None:
        if not self.greeted:
            self.send({"event": "ready", "pid": os.getpid()})
            self.greeted = True


class Worker(_Role):
    """One per worker slot: forks one episode process per ``run`` command and supervises it."""

    def __init__(self, isolation: str, channel: int) -> None:
        self.isolation = isolation
        self.channel = channel  # a Unix socket to the harness, both directions
        self.inbox = b""
        self.current_pgid: int | None = None

    # protocol ---------------------------------------------------------------------------
    def send(self, message: dict) -> None:
        _write_all(self.channel, json.dumps(message).encode("utf-8") + b"\n")

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
        """Our parent died (PDEATHSIG) or we were told to stop: take the episode with us."""
        self.kill_tree(signal.SIGKILL)
        self.kill_leftovers()
        os._exit(128 + signum)

    def next_fork(self) -> ForkRequest | None:
        """Answer commands until one needs an episode process; None means exit."""
        self.greet_once()
        while True:
            command = self.read_command(block=True)
            kind = command.get("cmd")
            if kind == "run":
                result_r, result_w = os.pipe()
                output_r, output_w = os.pipe()
                sys.stdout.flush()
                sys.stderr.flush()
                return ForkRequest(
                    "episode", job=command, result_r=result_r, result_w=result_w, output_r=output_r, output_w=output_w
                )
            if kind == "exit":
                usage = resource.getrusage(resource.RUSAGE_SELF)
                self.send({"event": "bye", "cpu_user_s": usage.ru_utime, "cpu_sys_s": usage.ru_stime})
                return None
            # a "kill" that arrives while idle is for an episode that already ended

    def become_episode(self, request: ForkRequest, worker_pid: int) -> None:
        """In the forked child: its own process group, dies with the worker, default
        signals, output into the capture pipe, the run directory as working directory."""
        os.setpgid(0, 0)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        _die_with_parent(signal.SIGKILL, worker_pid)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(request.output_w, 1)
        os.dup2(request.output_w, 2)
        for fd in (null, request.output_w, request.output_r, request.result_r, self.channel):
            os.close(fd)
        os.chdir(request.job.get("cwd") or ".")

    def forked(self, pid: int, request: ForkRequest) -> None:
        """In the worker: capture the episode's output (capped) and result, obey kill
        requests, reap it, kill what it left behind, and report the kernel's accounting."""
        self.current_pgid = pid
        os.close(request.result_w)
        os.close(request.output_w)
        job = request.job
        result = bytearray()
        output = _CappedLog(job.get("log_path"), int(job.get("output_cap", 1024 * 1024)))
        killed = False
        kill_deadline: float | None = None
        pidfd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
        streams = {request.result_r: result, request.output_r: output}
        exited = False
        while not exited:
            watch = [self.channel, *streams]
            if pidfd is not None:
                watch.append(pidfd)
            timeout = 0.05 if pidfd is None else None
            if kill_deadline is not None:
                remaining = max(kill_deadline - time.monotonic(), 0)
                timeout = remaining if timeout is None else min(timeout, remaining)
            ready, _, _ = select.select(watch, [], [], timeout)
            for fd in ready:
                if fd == self.channel:
                    command = self.read_command(block=False)
                    if command and command.get("cmd") == "kill" and not killed:
                        killed = True
                        self.kill_tree(signal.SIGTERM)
                        kill_deadline = time.monotonic() + float(command.get("grace", 1.0))
                    elif command and command.get("cmd") == "exit":  # the harness is going away
                        self.kill_tree(signal.SIGKILL)
                        self.kill_leftovers()
                        os._exit(0)
                elif fd in streams:
                    chunk = os.read(fd, 65536)
                    if chunk:
                        _append(streams[fd], chunk)
                    else:
                        os.close(fd)
                        del streams[fd]
            if kill_deadline is not None and time.monotonic() >= kill_deadline:
                self.kill_tree(signal.SIGKILL)
                kill_deadline = None
            if pidfd is None or pidfd in ready:
                waited, status, usage = os.wait4(pid, 0 if pidfd is not None else os.WNOHANG)
                exited = waited == pid
        if pidfd is not None:
            os.close(pidfd)
        # The episode is over: nothing it started may outlive it.
        self.kill_tree(signal.SIGKILL)
        leftovers, extra_user, extra_sys = self.kill_leftovers()
        self.current_pgid = None
        for fd in list(streams):  # every writer is dead now, so these reach EOF
            while chunk := os.read(fd, 65536):
                _append(streams[fd], chunk)
            os.close(fd)
        output.close()
        message = {
            "event": "done",
            "returncode": os.waitstatus_to_exitcode(status),
            "killed": killed,
            "cpu_user_s": usage.ru_utime + extra_user,
            "cpu_sys_s": usage.ru_stime + extra_sys,
            "max_rss_bytes": usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024),
            "output_bytes": output.total,
            "leftover_processes": leftovers,
            "result": None,
        }
        if result:
            try:
                message["result"] = json.loads(bytes(result))
            except ValueError as exc:
                message["result_error"] = f"unreadable result from episode process: {exc}"
        self.send(message)

    def kill_tree(self, sig: int) -> None:
        if self.current_pgid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.current_pgid, sig)

    @staticmethod
    def kill_leftovers() -> tuple[int, float, float]:
        """Kill and reap every process re-parented to us (we are a subreaper), repeating
        until none is left, since killing one re-parents its own children to us."""
        count, user, system = 0, 0.0, 0.0
        while kids := _children():
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
        return count, user, system


def _children() -> list[int]:
    pid = os.getpid()
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


class _CappedLog:
    """Keeps the first ``cap`` bytes of an episode's stdout+stderr in a file (created only
    when there is output) and counts the rest, so a flood neither blocks nor fills disk."""

    def __init__(self, path: str | None, cap: int) -> None:
        self.path, self.cap, self.kept, self.total, self.fh = path, cap, 0, 0, None

    def write(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self.path is None or self.kept >= self.cap:
            return
        if self.fh is None:
            try:
                self.fh = open(self.path, "wb")  # noqa: SIM115 - closed in close()
            except OSError:  # the run directory is gone or full: count, keep nothing
                self.path = None
                return
        piece = chunk[: self.cap - self.kept]
        try:
            self.fh.write(piece)
        except OSError:  # a full disk: stop keeping output, never stop the worker
            self.path, self.kept = None, self.cap
            return
        self.kept += len(piece)

    def close(self) -> None:
        if self.fh is None:
            return
        try:
            if self.total > self.kept and self.path is not None:
                self.fh.write(f"\n[tracecore-perf: output capped, {self.total - self.kept} more bytes dropped]\n".encode())
            self.fh.close()
        except OSError:
            pass


def _append(sink, chunk: bytes) -> None:
    if isinstance(sink, bytearray):
        if len(sink) < RESULT_CAP_BYTES:
            sink.extend(chunk)
    else:
        sink.write(chunk)


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
            _write_all(result_w, json.dumps(function(request), default=str).encode("utf-8"))
        except BaseException:  # noqa: BLE001 - report on stderr, never return into the zygote
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(result_w)
    chunks = []
    while chunk := os.read(result_r, 65536):
        chunks.append(chunk)
    os.close(result_r)
    _, status = os.waitpid(pid, 0)
    answer = {"event": "done", "returncode": os.waitstatus_to_exitcode(status), "result": None}
    if chunks:
        try:
            answer["result"] = json.loads(b"".join(chunks))
        except ValueError as exc:
            answer["result_error"] = f"unreadable answer: {exc}"
    return answer


class Zygote(_Role):
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
        for kid in _children():
            if kid not in self.workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(kid, signal.SIGKILL)

    def become_worker(self, request: ForkRequest, zygote_pid: int) -> Worker:
        """In the forked child: drop the zygote's socket, become the worker of one slot."""
        self.control.close()
        worker = Worker(self.isolation, request.channel)
        signal.signal(signal.SIGTERM, worker.on_terminate)
        _die_with_parent(signal.SIGTERM, zygote_pid)
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        return worker

    def forked(self, pid: int, request: ForkRequest) -> None:
        os.close(request.channel)
        self.workers.add(pid)
        self.send({"event": "spawned", "pid": pid})

    def stop_workers(self, wait: bool) -> None:
        for pid in list(self.workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        if wait:
            for pid in list(self.workers):
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
                self.workers.discard(pid)

    def on_terminate(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
        self.stop_workers(wait=False)  # each worker kills its episode tree on SIGTERM
        os._exit(128 + signum)

    def next_fork(self) -> ForkRequest | None:
        """Answer commands until one needs a worker forked; None means exit."""
        self.greet_once()
        while True:
            command, fds = self.receive()
            kind = command.get("cmd")
            if kind == "spawn":
                for fd in fds[1:]:
                    os.close(fd)
                sys.stdout.flush()
                sys.stderr.flush()
                return ForkRequest("worker", channel=fds[0])
            for fd in fds:
                os.close(fd)
            if kind == "warm":
                if self.isolation == "forkserver":
                    warm(command.get("scenario", []))
                self.send({"event": "warmed"})
            elif kind in ("probe", "metrics"):
                self.send(fork_call(probe if kind == "probe" else metrics, command))
            elif kind == "log":
                # from now on our stdout/stderr (inherited by workers) go to the run's log
                fd = os.open(command["path"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                os.close(fd)
                self.send({"event": "logging"})
            elif kind == "exit":
                self.stop_workers(wait=True)
                usage = resource.getrusage(resource.RUSAGE_SELF)
                self.send({"event": "bye", "cpu_user_s": usage.ru_utime, "cpu_sys_s": usage.ru_stime})
                return None


def main(argv: list[str]) -> None:
    mode = argv[1]
    if mode == "episode":  # a spawned episode interpreter: argv = [.., "episode", job, result_fd]
        _write_all(int(argv[3]), json.dumps(run_episode(json.loads(argv[2]))).encode("utf-8"))
        return
    # mode == "zygote": argv = [.., "zygote", isolation, harness_pid]; stdin is a Unix
    # socket to the harness.
    import socket

    isolation, harness_pid = argv[2], int(argv[3])
    control = socket.socket(fileno=os.dup(0))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    role: Zygote | Worker = Zygote(isolation, control)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the harness decides what Ctrl-C means
    signal.signal(signal.SIGTERM, role.on_terminate)
    _die_with_parent(signal.SIGTERM, harness_pid)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    while (request := role.next_fork()) is not None:
        parent_pid = os.getpid()
        pid = os.fork()
        if pid:
            role.forked(pid, request)
            continue
        try:
            if request.kind == "worker":
                role = role.become_worker(request, parent_pid)
                continue
            # An episode process: it runs right here, two frames below the module.
            role.become_episode(request, parent_pid)
            if isolation == "spawn":
                os.set_inheritable(request.result_w, True)
                os.execv(
                    sys.executable,
                    [sys.executable, os.path.abspath(__file__), "episode", json.dumps(request.job), str(request.result_w)],
                )
            _write_all(request.result_w, json.dumps(run_episode(request.job)).encode("utf-8"))
            sys.stdout.flush()
            sys.stderr.flush()
            code = 0
        except BaseException:  # noqa: BLE001 - nothing may escape a forked child
            import traceback

            traceback.print_exc()
            code = EXIT_CHILD_SETUP_FAILED
        try:
            sys.stderr.flush()
        finally:
            os._exit(code)
    if isinstance(role, Worker):
        os._exit(0)  # a worker that was told to exit: skip the zygote's interpreter teardown


if __name__ == "__main__":
    main(sys.argv)
