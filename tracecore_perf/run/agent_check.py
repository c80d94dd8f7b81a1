"""Checking an agent file before a run: its module runs, in a process of its own.

TraceCore's loader imports an agent file, so checking that a file holds an agent class runs
the file's top-level code, which may be hostile. That code runs here in a fresh interpreter
(``episode_process.py check-agent JOB``), never in a process of the run's: it holds no
descriptor of the harness's but the pipe it answers on (no zygote, no worker, no control
socket to forge replies on), works in a scratch directory of its own, runs under the run's
``--sandbox`` when the run has it, and under ``--instructions`` cannot start a process (one
that would outlive it to do an episode's work uncounted). Its answer can only accept or
refuse this one agent: anything but one clean answer from a process that exited 0 is a
refusal, one line naming the agent.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile

import anyio

from tracecore_perf.errors import UsageError
from tracecore_perf.run.orchestrator import exit_status_text, one_line
from tracecore_perf.run.spawn import RUN_TOKEN, TOKEN_ENV, WORKER_SCRIPT

ANSWER_CAP_BYTES = 64 * 1024  # {"problem": "..."}: a few hundred bytes when honest
CHECK_DEADLINE_S = 120.0


async def check_agent_file(
    python: str, agent: str, resolved: str, *, sandbox: bool, single_process: bool, hidden: list[str]
) -> None:
    """Load ``resolved`` (the scenario's ``agent``) with TraceCore's loader in a confined
    process of ``python``; UsageError naming the agent unless it answered that it loads."""
    scratch_root = tempfile.mkdtemp(prefix="tracecore-perf-check-")
    scratch = os.path.join(scratch_root, "agent")
    os.mkdir(scratch)
    job = {
        "path": resolved,
        "scratch": scratch,
        "scratch_root": scratch_root,
        "sandbox": sandbox,
        "hidden": [os.path.realpath(path) for path in hidden if os.path.isdir(path)],
        "single_process": single_process,
    }
    try:
        returncode, answer, timed_out = await _run_check(python, job)
    finally:
        shutil.rmtree(scratch_root, ignore_errors=True)
    if timed_out:
        raise UsageError(one_line(f"agent not found: {agent}: loading it took more than {CHECK_DEADLINE_S:g} s"))
    problem = _problem(returncode, answer)
    if problem:  # the agent's own words: one line, control characters shown escaped
        raise UsageError(one_line(f"agent not found: {agent}: {problem}"))


def _problem(returncode: int, answer: bytes) -> str | None:
    """Why the check refuses the agent, or None when it answered, cleanly, that it loads."""
    try:
        verdict = json.loads(answer) if answer else None
    except ValueError:
        verdict = None
    clean = isinstance(verdict, dict) and set(verdict) == {"problem"} and isinstance(verdict["problem"], (str, type(None)))
    if returncode != 0:
        if clean and verdict["problem"]:
            return verdict["problem"]
        return f"the process loading it ended ({exit_status_text(returncode)})"
    if not clean:
        what = "no answer" if not answer else "an answer that is not the check's (something wrote to its pipe)"
        return f"the process loading it gave {what}"
    return verdict["problem"]


async def _run_check(python: str, job: dict) -> tuple[int, bytes, bool]:
    """Run the check; its exit code, what it wrote on its answer pipe, whether it ran out of time."""
    env = dict(os.environ, **{TOKEN_ENV: RUN_TOKEN})  # strays.sweep finds what it leaves
    process = await anyio.open_process(
        [python, str(WORKER_SCRIPT), "check-agent", json.dumps(job)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,  # the answer pipe: the check moves it off fd 1 before the module runs
        stderr=subprocess.DEVNULL,
        cwd=job["scratch"],
        env=env,
        start_new_session=True,  # its own process group: everything it starts is killed with it
    )
    answer = bytearray()
    timed_out = True
    try:
        with anyio.move_on_after(CHECK_DEADLINE_S):
            assert process.stdout is not None
            async for chunk in process.stdout:
                if len(answer) <= ANSWER_CAP_BYTES:
                    answer += chunk
            await process.wait()
            timed_out = False
    finally:
        with anyio.CancelScope(shield=True):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            await process.aclose()
    return process.returncode or 0, bytes(answer[: ANSWER_CAP_BYTES + 1]), timed_out
