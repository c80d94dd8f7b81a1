"""What forking costs an episode: the same episodes in-process and in processes forked from a
warmed process, side by side in one run (``docs/profile.md`` quotes it).

The process loads the episode side (``tracecore_perf/run/episode/``) as the zygote does
(``episode_process.load_episode_side``) and imports TraceCore's runner, then runs
``--episodes`` episodes of the default scenario four ways, one after another:

- ``in-process``: ``episode.run_episode_in_process(job)`` plus the JSON encoding of its report,
  one after another in one process as TraceCore runs them on its own: a child of this process
  forked *before any warm-up of ours*, with sys.modules as a TraceCore process has it
  (``warmup.as_tracecore_runs()``); CPU and minor page faults from ``getrusage(RUSAGE_SELF)``
  around each episode (the first pass over the rows, which pays the fork's pages and
  TraceCore's lazy imports, is dropped);

then this process is warmed as the zygote warms itself (``warmup.warm_runtime()``, the
verdict, ``warmup.warm()``, ``warmup.rehearse()`` with ``--warmup`` episodes of each row), and:

- ``forked``: one episode in a child forked from here, as the product runs it:
  ``as_tracecore_runs()`` first, then the same work, reporting over a pipe; CPU and minor
  faults from the kernel's accounting of the child (``wait4``), plus the CPU this process
  spent in ``fork()``;
- ``fork + exit``: a child that exits at once: what a process costs with no episode in it;
- ``second in a fork``: a child runs two episodes and reports the second's CPU and faults
  (``getrusage`` inside it): the same work once the fork's pages are its own.

``forked - in-process - fork + exit`` is what the episode pays for running in a fresh fork;
divided by the extra faults, it estimates what one copy-on-write page fault costs here.

Before this version the forked children ran their episode with the harness's and the episode
side's modules still in sys.modules (an episode process drops them: ``as_tracecore_runs``), and
the in-process loop ran after ``warm()`` and ``rehearse()`` in this process. It was once read
as 12.9 ms of CPU per episode before ``warm()`` and 17.4 ms after (+35%), and taken for the
warm-up making episodes dearer. Measured with every configuration interleaved round by round
(``scripts/warmup_cost.py``), that is not what the warm-up does: in one process
the same episodes cost 1.3 ms *less* after the zygote's whole warm-up than with TraceCore
imported alone (1.26 ms saved, 95% interval 0.83 to 1.68, ``--in-process``, 40 rounds), and
the warm-up's modules left in sys.modules make no measurable difference (+0.50 ms, -0.05 to
+1.19). Forked, the harness's and the episode side's modules left in sys.modules (what this
script did) cost an episode 4.5% more instructions (101.6 against 97.3 M, ``--instructions``)
and 0.45-0.6 ms of CPU, a few percent. The rest of the +35% was the host:
two loops run one after the other on two shared vCPUs, where a process's CPU time grows with
the host's load; interleaved, as above, the loop after the warm-up is not the dearer one.
Figures in ``docs/profile.md``, "What each warm-up step is worth".

Usage::

    python scripts/fork_cost.py [--episodes 200] [--warmup 1]

Medians. The four ways run one after another, not interleaved: on a shared host a process's
CPU time grows with the host's load, so compare them within one run of a quiet host, and use
``scripts/warmup_cost.py`` for what a warm-up step is worth.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EPISODE_SCRIPT = REPO / "tracecore_perf" / "run" / "episode_process.py"
ROWS = (
    ("toy_agent.py", "filesystem_hidden_config@1"),
    ("rate_limit_agent.py", "rate_limited_api@1"),
    ("chain_agent.py", "rate_limited_chain@1"),
    ("ops_triage_agent.py", "log_alert_triage@1"),
)


def load_episode_side():
    """The episode side loaded as the zygote loads it: episode_process.py's loader alone (the
    rest of that script runs a zygote). Returns the module it returns."""
    tree = ast.parse(EPISODE_SCRIPT.read_text())
    tree.body = [node for node in tree.body if getattr(node, "name", "") == "load_episode_side"]
    script = {"__file__": str(EPISODE_SCRIPT), "os": os, "sys": sys}
    exec(compile(tree, str(EPISODE_SCRIPT), "exec"), script)  # noqa: S102 - our own file
    return script["load_episode_side"]()


def _cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def _in_child(work) -> tuple[bytes, resource.struct_rusage, float]:
    """``work()`` (returning bytes) in a child forked from here: what it returned, the
    kernel's accounting of the child, and the CPU this process spent in fork()."""
    read_end, write_end = os.pipe()
    before = time.process_time()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        view = memoryview(work())
        while view:
            view = view[os.write(write_end, view) :]
        os._exit(0)
    fork_cpu = time.process_time() - before
    os.close(write_end)
    data = b""
    while chunk := os.read(read_end, 1 << 16):
        data += chunk
    os.close(read_end)
    _, _, usage = os.wait4(pid, 0)
    return data, usage, fork_cpu


def _forked(episode, warmup, job: dict | None) -> tuple[float, int, float]:
    """One episode (or, with no job, nothing) in a forked child, as the product runs it:
    ``as_tracecore_runs()`` first. Its CPU, its minor faults, and our CPU in fork()."""

    def one() -> bytes:
        if job is None:
            return b""
        warmup.as_tracecore_runs()
        return json.dumps(episode.run_episode_in_process(job)).encode()

    _, usage, fork_cpu = _in_child(one)
    return _cpu(usage), usage.ru_minflt, fork_cpu


def _second_in_fork(episode, warmup, first: dict, job: dict) -> tuple[float, int]:
    """A child (``as_tracecore_runs()`` first) runs ``first``, then ``job``; returns
    ``job``'s CPU and minor faults."""

    def both() -> bytes:
        warmup.as_tracecore_runs()
        episode.run_episode_in_process(first)
        return json.dumps(_in_process(episode, job)).encode()

    data, _, _ = _in_child(both)
    cpu, faults = json.loads(data)
    return cpu, faults


def _in_process(episode, job: dict) -> tuple[float, int]:
    before = resource.getrusage(resource.RUSAGE_SELF)
    json.dumps(episode.run_episode_in_process(job))
    after = resource.getrusage(resource.RUSAGE_SELF)
    return _cpu(after) - _cpu(before), after.ru_minflt - before.ru_minflt


def _in_process_cold(episode, warmup, jobs: list[dict]) -> list[tuple[float, int]]:
    """``jobs`` one after another in one process, as TraceCore runs them on its own: a child
    of this still unwarmed process, sys.modules as a TraceCore process has it
    (``as_tracecore_runs()``), so this process stays as the zygote starts."""

    def all_of_them() -> bytes:
        warmup.as_tracecore_runs()
        return json.dumps([_in_process(episode, job) for job in jobs]).encode()

    data, _, _ = _in_child(all_of_them)
    return [tuple(pair) for pair in json.loads(data)]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=200, help="episodes per way (default 200)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up episodes of each row, as --warmup (default 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    package = load_episode_side().__name__.rpartition(".")[0]
    episode, warmup, spec = (importlib.import_module(f"{package}.{name}") for name in ("episode", "warmup", "spec"))
    import agent_bench
    import agent_bench.runner.runner  # noqa: F401 - TraceCore imported: all a process that runs it has

    agents = Path(agent_bench.__file__).parent / "agents"
    rows = [{"agent": str(agents / a), "agent_label": f"agents/{a}", "task_ref": t, "seed": 0} for a, t in ROWS]
    scratch = tempfile.mkdtemp(prefix="fork-cost-")
    os.chdir(scratch)
    jobs = [dict(rows[i % len(rows)], seed=i) for i in range(args.episodes)]
    # in-process first, before any warm-up of ours (in a child: this process stays unwarmed)
    inproc = _in_process_cold(episode, warmup, jobs)[len(rows) :]
    # then warmed as the zygote warms itself (zygote.start, the warm and rehearse commands)
    warmup.warm_runtime()
    with warmup.harness_imports():
        spec.warm_verdict()
    warmup.warm(rows)
    failures = warmup.rehearse({"rows": rows, "episodes": args.warmup, "scratch_root": scratch, "deadline_s": 30})
    if failures:
        print(f"fork_cost: warm-up failed: {failures}", file=sys.stderr)
        return 1
    forked = [_forked(episode, warmup, job) for job in jobs][len(rows) :]
    bare = [_forked(None, None, None) for _ in range(50)]
    second = [_second_in_fork(episode, warmup, dict(job, seed=job["seed"] + 10_000), job) for job in jobs][len(rows) :]
    med = statistics.median
    work_ms, work_faults = med(c for c, _ in inproc) * 1e3, med(f for _, f in inproc)
    fork_ms, fork_faults = med(c for c, _, _ in forked) * 1e3, med(f for _, f, _ in forked)
    bare_ms, bare_faults = med(c for c, _, _ in bare) * 1e3, med(f for _, f, _ in bare)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.json:
        figures = {
            "episodes": len(inproc),
            "in_process_ms": round(work_ms, 3),
            "forked_ms": round(fork_ms, 3),
            "fork_parent_ms": round(med(p for _, _, p in forked) * 1e3, 3),
            "bare_ms": round(bare_ms, 3),
            "second_in_fork_ms": round(med(c for c, _ in second) * 1e3, 3),
            "faults": {"in_process": work_faults, "forked": fork_faults, "bare": bare_faults},
        }
        print(json.dumps(figures))
        return 0
    print(
        f"{len(inproc)} episodes each way (first pass over the rows dropped), warm-up {args.warmup}, "
        f"parent peak RSS {rss_mb:.1f} MB"
    )
    print(f"in-process (no warm-up of ours): CPU {work_ms:.2f} ms/episode, minor faults {work_faults:.0f}")
    print(
        f"forked:      CPU {fork_ms:.2f} ms/episode in the child, minor faults {fork_faults:.0f}; "
        f"fork() in the parent {med(p for _, _, p in forked) * 1e3:.2f} ms"
    )
    print(f"fork + exit: CPU {bare_ms:.2f} ms in the child, minor faults {bare_faults:.0f}")
    print(f"second in a fork: CPU {med(c for c, _ in second) * 1e3:.2f} ms/episode, minor faults {med(f for _, f in second):.0f}")
    extra_ms = fork_ms - work_ms - bare_ms
    extra_faults = fork_faults - work_faults - bare_faults
    per_fault = f"{extra_ms / extra_faults * 1e3:.1f} us" if extra_faults > 0 else "n/a"
    print(
        f"an episode in a fresh fork pays {extra_ms:.2f} ms more than in-process, beyond the bare process, "
        f"with {extra_faults:.0f} more faults: ~{per_fault} per fault"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
