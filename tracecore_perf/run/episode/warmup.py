"""Warming: what the zygote pays once so that every process it forks starts warm (TraceCore's
imports, the sandbox guard's source caches; zygote.start loads the workers' verdict after
them), the warm-up episodes run in the zygote itself (``rehearse``), and sys.modules put back
as a TraceCore process has it in each episode process (``as_tracecore_runs``)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile

from .artifact import relabel
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


# The warm-up's steps that scripts/warmup_cost.py leaves out one at a time (``leave_out``; the
# zygote never passes it), to measure what each saves or costs every episode forked after it,
# in CPU, page faults and instructions (docs/profile.md, "What each warm-up step is worth").
# Two steps made every episode dearer and were dropped: loading the workers' verdict here,
# before the source caches (zygote.start loads it right after warm_runtime(); before, it cost
# every episode 23-44 more page faults after rehearse(), 8-41 where none ran, over four
# passes), and gc.collect() + gc.freeze() after warm() and rehearse() (27-58 more page
# faults, rehearsed or not). Neither saved CPU or instructions anywhere (within +-0.05%,
# which is the layout noise of those counts). Each step kept below says what it was
# measured to save.
STEPS = ("sources", "stack")


def warm_runtime(leave_out: frozenset[str] = frozenset()) -> None:
    """Pay once, in the zygote, what every forked child would otherwise pay: TraceCore's
    imports and the sandbox guard's source caches. Done as the zygote starts, while the
    harness is still importing its own libraries; the workers' verdict is loaded after this
    (``zygote.start``). No agent code runs here. Why kept: on TraceCore imported alone it
    saves every episode 28.6 M instructions (164.8 against 136.2 M), 9-11 ms CPU and ~440
    page faults."""
    import inspect

    import agent_bench
    import agent_bench.runner.runner  # noqa: F401

    # TraceCore's sandbox guard calls inspect.stack() on every file access, which reads
    # source through linecache. A forked child inherits the cache. Why kept: where no
    # warm-up episode ran (--warmup 0, a user's own agent, a failed rehearsal) the caches
    # here and in warm() save every episode ~1% of its instructions (98.3 against 99.2 M),
    # 24-42 page faults and 0.4-0.7 ms CPU (at the edge of what this host can tell); after
    # rehearse(), no difference.
    if "sources" not in leave_out:
        package_root = os.path.dirname(agent_bench.__file__)
        for folder, _, files in os.walk(package_root):
            _cache_sources(os.path.join(folder, name) for name in files if name.endswith(".py"))
    # inspect's own caches (which module a file is: inspect.getmodule, consulted on every
    # guard call). Why kept: where no warm-up episode ran, these calls (here and in warm())
    # save every episode 25.7 M instructions (124.0 against 98.3 M), 6.4-8.0 ms CPU and ~110
    # page faults; after rehearse(), no difference.
    if "stack" not in leave_out:
        inspect.stack()


def warm(scenario: list[dict], leave_out: frozenset[str] = frozenset()) -> None:
    """The scenario's share of the warming: its tasks in the task registry, their and the
    agents' source in the caches. Why kept: after warm_runtime() it saves every episode of a
    row no warm-up episode ran 37.9 M instructions (136.2 against 98.3 M), 8.5-12.5 ms CPU
    and ~330 page faults; after rehearse(), no difference."""
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
    if "sources" not in leave_out:
        _cache_sources(sources)
    if "stack" not in leave_out:
        import inspect

        inspect.stack()


def _cache_sources(paths) -> None:
    import linecache

    for path in paths:
        linecache.getlines(path)


def keep_compiled(paths) -> None:
    """Compile each agent file once, here in the zygote, and keep its code object: every
    import of that file in an episode process (TraceCore's loader: ``spec_from_file_location``
    and ``exec_module``, a ``SourceFileLoader``) takes it instead of compiling the source again,
    which a file with no .pyc beside it (a user's own agent on a host that writes none,
    ``PYTHONDONTWRITEBYTECODE``) cost every episode (+354 k instructions, +0.9%, for a 10-line
    agent), or reading its .pyc. Compiling runs none of the file's code, so the user's own agent
    files are compiled as TraceCore's are. The code is the loader's own (``source_to_code``, the
    same compiler and flags); the file as it was now, which the run's seal holds it to (a change
    taints the run). A file that cannot be read or compiled is left to the loader, which fails
    the episode as it would have."""
    from importlib.machinery import SourceFileLoader

    for path in paths:
        try:
            with open(path, "rb") as fh:
                source = fh.read()
            side.agent_code[path] = SourceFileLoader("openclaw_agent", path).source_to_code(source, path)
        except Exception:  # noqa: BLE001 - left to the loader
            continue
    if side.agent_code and "get_code" not in SourceFileLoader.__dict__:
        compiled, get_code = side.agent_code, SourceFileLoader.get_code

        def kept_get_code(self, fullname):
            code = compiled.get(self.path)
            return code if code is not None else get_code(self, fullname)

        SourceFileLoader.get_code = kept_get_code


# The harness's own agent, for a task that only a user's own agent files run and for which
# TraceCore names no shipped agent (``task_agent``): its first action ends the episode.
TASK_WARMING_AGENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "task_warming_agent.py")


def task_agent(task_ref: str) -> str:
    """The agent that warms ``task_ref`` when only a user's own agent files run it (a warm-up
    row with no agent, ``harness._warmup_rows``): TraceCore's known-good shipped agent for the
    task (``agent_bench.pairings``, its quick-start pairings), which a user's agent for that
    task does much the same work as (on the toy task, a copy of the toy agent as the user's
    file, alone, counts +0.50% against the same file beside the shipped agent's row with the
    task unwarmed, +0.41% with it only loaded by the harness's agent, +0.09% with it warmed
    by the shipped agent); else the harness's own agent, which loads the task and stops. Never the user's
    file: the warm-up runs in the zygote, one step closer to the harness than any episode."""
    task_id, _, version = task_ref.partition("@")
    try:
        from agent_bench.pairings import PAIRINGS
    except ImportError:  # a TraceCore without the pairings
        return TASK_WARMING_AGENT
    for pairing in PAIRINGS:
        paired_id, _, paired_version = str(pairing.task).partition("@")
        if paired_id == task_id and (not version or not paired_version or version == paired_version):
            return str(pairing.agent)
    return TASK_WARMING_AGENT


class _Deadline(BaseException):
    """A warm-up episode ran past its deadline (raised by SIGALRM inside it)."""


def rehearse(command: dict) -> list[str]:
    """Warm-up, in the zygote itself: run ``episodes`` episodes of each row and discard them,
    so what only a real episode warms (TraceCore's lazy imports and caches, the task's and
    the agent's modules, the sandbox guard's source caches) is warm in every process forked
    from here, as in a long-lived TraceCore service. Pays for it once per run, like pyperf's
    and hyperfine's warm-up runs, which are never measured. Each episode is bounded by
    SIGALRM; whatever an episode raises is that row's failure (one line), never the zygote's.
    Returns the failures. Nothing is frozen afterwards (gc.freeze() made episodes dearer: see
    ``STEPS``). Why kept: after warm(), one episode of each row saves every later episode
    ~1.02-1.06 M instructions (98.3 against 97.3 M), 28-50 page faults and 0.4-0.9 ms CPU."""
    from agent_bench.runner.runner import run

    keep_compiled(command.get("agent_files") or [])
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
                    agent = row["agent"] or task_agent(row["task_ref"])
                    artifact = run(agent, row["task_ref"], int(row.get("seed", 0)) + i)
                    label = row.get("agent_label")
                    if row["agent"] and label and label != row["agent"]:  # not a task's warming
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
    return failures
