"""Warming: what the zygote pays once so that every process it forks starts warm (TraceCore's
imports, the sandbox guard's source caches, the workers' verdict), the warm-up episodes run in
the zygote itself (``rehearse``), and sys.modules put back as a TraceCore process has it in
each episode process (``as_tracecore_runs``)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile

from .artifact import relabel
from .spec import warm_verdict
from .state import side
from .system import remove_tree

# Modules the zygote imports for the harness's own work (its sockets, prctl, the workers'
# artifact encoding and spec check), not for TraceCore's: an episode process takes them out
# of its sys.modules (``as_tracecore_runs``). TraceCore's sandbox guard looks frames up in
# inspect.getmodule, which walks every module in sys.modules when a frame's file is not one
# (an agent's, a task's): sixty modules of jsonschema left there cost a rate_limited_api
# episode ~7% more instructions than TraceCore run on its own. Recorded in
# ``side.harness_modules``.


@contextlib.contextmanager
def harness_imports():
    before = set(sys.modules)
    try:
        yield
    finally:
        side.harness_modules.update(set(sys.modules) - before)


def as_tracecore_runs() -> None:
    """In an episode process, before TraceCore runs: sys.modules as a TraceCore process has
    it (the modules stay loaded; the workers keep using them)."""
    for name in side.harness_modules:
        sys.modules.pop(name, None)
    forget_episode_side()


def forget_episode_side() -> None:
    """In an episode process: this package's own modules out of sys.modules, and the finder
    ``episode_process.py`` loaded them with out of sys.meta_path, as when the roles were one
    file loaded by path and never registered (each module there costs the sandbox guard's
    lookups). The modules stay loaded: the functions in use hold them."""
    finder = getattr(sys.modules.get(__name__.rpartition(".")[0]), "source_finder", None)
    if finder is None:  # imported as tracecore_perf.run.episode (the harness's process): not ours to forget
        return
    with contextlib.suppress(ValueError):
        sys.meta_path.remove(finder)
    for name in finder.names:
        sys.modules.pop(name, None)


def warm_runtime() -> None:
    """Pay once, in the zygote, what every forked child would otherwise pay: TraceCore's
    imports, the sandbox guard's source caches; and the workers' verdict. Done as the zygote
    starts, while the harness is still importing its own libraries. No agent code runs here."""
    import inspect

    import agent_bench
    import agent_bench.runner.runner  # noqa: F401

    # The verdict before the caches below: loaded after them, it costs every episode ~0.3%
    # more instructions (a toy episode 35.96 M against 35.86 M, counted with --instructions).
    with harness_imports():
        warm_verdict()
    # TraceCore's sandbox guard calls inspect.stack() on every file access, which reads
    # source through linecache and maps files to modules through inspect's caches. A
    # forked child inherits those caches; a cold one costs it ~15 ms per episode.
    package_root = os.path.dirname(agent_bench.__file__)
    for folder, _, files in os.walk(package_root):
        _cache_sources(os.path.join(folder, name) for name in files if name.endswith(".py"))
    inspect.stack()


def warm(scenario: list[dict]) -> None:
    """The scenario's share of the warming: its tasks in the task registry, their and the
    agents' source in the caches; then the zygote's objects out of the children's
    collections."""
    from agent_bench.tasks.loader import load_task

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
    _cache_sources(sources)
    import gc
    import inspect

    inspect.stack()

    gc.collect()
    gc.freeze()  # keep the server's objects out of the children's collections (fewer page copies)


def _cache_sources(paths) -> None:
    import linecache

    for path in paths:
        linecache.getlines(path)


class _Deadline(BaseException):
    """A warm-up episode ran past its deadline (raised by SIGALRM inside it)."""


def rehearse(command: dict) -> list[str]:
    """Warm-up, in the zygote itself: run ``episodes`` episodes of each row and discard them,
    so what only a real episode warms (TraceCore's lazy imports and caches, the task's and
    the agent's modules, the sandbox guard's source caches) is warm in every process forked
    from here, as in a long-lived TraceCore service. Pays for it once per run, like pyperf's
    and hyperfine's warm-up runs, which are never measured. Each episode is bounded by
    SIGALRM; whatever an episode raises is that row's failure (one line), never the zygote's.
    Returns the failures."""
    import gc

    from agent_bench.runner.runner import run

    failures: list[str] = []
    home = os.getcwd()
    scratch = tempfile.mkdtemp(prefix="warmup-", dir=command.get("scratch_root"))

    def expire(signum, frame):  # noqa: ARG001 - signal handler signature
        raise _Deadline

    previous = signal.signal(signal.SIGALRM, expire)
    try:
        os.chdir(scratch)
        for number, row in enumerate(command.get("rows", [])):
            for i in range(int(command.get("episodes", 0))):
                signal.setitimer(signal.ITIMER_REAL, float(command.get("deadline_s", 30)))
                try:
                    artifact = run(row["agent"], row["task_ref"], int(row.get("seed", 0)) + i)
                    label = row.get("agent_label")
                    if label and label != row["agent"]:
                        relabel(artifact, label)  # the same work a worker does with each artifact
                    json.dumps(artifact)
                except _Deadline:
                    deadline = command.get("deadline_s")
                    failures.append(f"row {number} ({row['agent_label']}): a warm-up episode ran past {deadline} s")
                    break
                except BaseException as exc:  # noqa: BLE001 - an agent may raise anything
                    failures.append(f"row {number} ({row['agent_label']}): {type(exc).__name__}: {str(exc)[:200]}")
                    break
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, previous)
        os.chdir(home)
        remove_tree(scratch)
    gc.collect()
    gc.freeze()  # what the warm-up allocated stays out of the children's collections too
    return failures
