"""One episode: its process set up by the worker (memory bounded), TraceCore's ``run()``'s
outcome made its result and reported on the result pipe (``finish``), and the worker's check
of that report (``check_report``), which places its artifact (``artifact``)."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import time

from .artifact import place_artifact
from .constants import EXIT_CHILD_SETUP_FAILED, FORWARD_CAP_BYTES, RESULT_CAP_BYTES, RESULT_FD
from .json_codec import loads
from .state import side
from .system import write_all

TYPE_CHECKING = False  # typing itself is an import the zygote need not pay for
if TYPE_CHECKING:
    from typing import NoReturn

M_ARENA_MAX = -8  # mallopt(3)
ADDRESS_SPACE_HEADROOM = 256 * 1024 * 1024  # reserved, unused address space an episode may hold beyond its limit


def run_episode_in_process(job: dict) -> dict:
    """Run one TraceCore episode in this process (cwd is the episode's scratch directory).
    Episode processes do not call this: they call ``run()`` from episode_process.py's module
    frame, with no frame of ours above it, then :func:`finish`; scripts/fork_cost.py does.
    (Not the harness's ``WorkerProcess.run_episode``, which sends a worker a job.)"""
    from agent_bench.runner.runner import run

    start = time.perf_counter()
    try:
        artifact = run(job["agent"], job["task_ref"], int(job["seed"]))
    except BaseException as exc:  # an agent may raise anything, SystemExit included
        artifact = exc
    return episode_result(artifact, time.perf_counter() - start)


def episode_result(artifact: dict | BaseException, episode_s: float) -> dict:
    """What an episode process reports once TraceCore's ``run()`` returned ``artifact`` (or
    raised it) after ``episode_s`` seconds: the ChildResult fields plus ``artifact``,
    TraceCore's run artifact itself, as ``run()`` made it. It travels to the worker over the
    result pipe, which no other process holds; the worker checks it, records it under the
    agent's name, runs the spec check (``--strict-spec``) and writes it into the run's
    ``.agent_bench/runs`` as TraceCore's ``persist_run`` would. Nothing of the evidence
    passes through a directory another episode could reach, and the episode process does
    TraceCore's work and little else (what an instruction count of it measures)."""
    if isinstance(artifact, BaseException):
        return {"completed": False, "episode_s": episode_s, "error": f"{type(artifact).__name__}: {artifact}"}
    return {"completed": True, "episode_s": episode_s, "run_id": artifact.get("run_id"), "artifact": artifact}


def finish(artifact: dict | BaseException, episode_s: float) -> NoReturn:
    """The end of an episode process: its report to its worker, on the result pipe (the
    only descriptor of ours it holds), its output flushed, and out, without the
    interpreter's teardown."""
    code = 0
    if side.python_trace is not None:  # a traced replay (explain's Python names): tracing off first
        try:
            side.python_trace.stop_and_write()
        except Exception as exc:  # noqa: BLE001 - a profile lost (a planted FIFO, a deep stack's memory), never the report
            print(f"tracecore-perf: no Python profile written: {exc}", file=sys.stderr)
    try:
        write_all(RESULT_FD, json.dumps(episode_result(artifact, episode_s)).encode("utf-8"))
        sys.stdout.flush()
    except BaseException:  # noqa: BLE001 - nothing may escape an episode process
        import traceback

        traceback.print_exc()
        code = EXIT_CHILD_SETUP_FAILED
    try:
        sys.stderr.flush()
    finally:
        os._exit(code)


def bound_memory(limit: int | None) -> None:
    """In an episode process: the first the kernel's OOM killer takes (oom_score_adj 1000, so
    the harness and the other episodes are spared), and its memory bounded: its data segment
    (RLIMIT_DATA: Python raises MemoryError past it) and what it maps beyond what it was
    forked with (RLIMIT_AS: shared mappings, a memfd, which the data limit does not count).
    Under Valgrind the limits are Valgrind's to keep, and do not bound the episode."""
    with contextlib.suppress(OSError):
        fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
        try:
            os.write(fd, b"1000")
        finally:
            os.close(fd)
    if not limit or side.callgrind_dir is not None:
        return
    with contextlib.suppress(ValueError, OSError, AttributeError):
        resource.setrlimit(resource.RLIMIT_DATA, (int(limit), int(limit)))
        # Address space is reserved, not used, by each thread's stack (8 MiB) and each malloc
        # arena (64 MiB): at most two arenas, and room for them and for stacks above the limit,
        # so a threaded agent is bounded by what it uses, not by what glibc reserves.
        if side.libc is None:
            import ctypes

            side.libc = ctypes.CDLL(None, use_errno=True)
        side.libc.mallopt(M_ARENA_MAX, 2)
        with open("/proc/self/statm", "rb") as fh:
            mapped = int(fh.read().split()[0]) * resource.getpagesize()
        bound = mapped + int(limit) + ADDRESS_SPACE_HEADROOM
        resource.setrlimit(resource.RLIMIT_AS, (bound, bound))


def check_report(raw: bytearray, job: dict) -> dict:
    """The episode's report, only if it is one JSON object within the cap. Its ``artifact``
    (when the report claims a finished run) must be that run's, and is placed into the run;
    the rest is forwarded to the harness, which checks its fields against their types, with
    the spec check's errors (``--strict-spec``), which are the worker's to find, never the
    episode's to claim. Anything else is the episode's failure, never the worker's."""
    if not raw:
        return {"result": None}
    if len(raw) >= RESULT_CAP_BYTES:
        return {"result": None, "result_error": f"bad result: more than the {RESULT_CAP_BYTES >> 20} MiB a report may take"}
    try:
        report = loads(bytes(raw))
    except (ValueError, RecursionError) as exc:
        return {"result": None, "result_error": f"bad result: not one JSON value ({str(exc)[:200]})"}
    if not isinstance(report, dict):
        return {"result": None, "result_error": f"bad result: a JSON {type(report).__name__}, not an object"}
    artifact = report.pop("artifact", None)
    report.pop("spec_errors", None)
    try:
        forwarded = json.dumps(report)
    except (ValueError, RecursionError):
        forwarded = ""
    if not forwarded or len(forwarded) > FORWARD_CAP_BYTES:
        return {"result": None, "result_error": "bad result: its fields are not plain values of a few KiB"}
    answer: dict = {"result": report}
    if report.get("completed") is True:
        placed = place_artifact(artifact, report.get("run_id"), job)
        spec_errors = placed.pop("spec_errors", None)
        if spec_errors is not None:
            report["spec_errors"] = spec_errors
        answer.update(placed)
    return answer
