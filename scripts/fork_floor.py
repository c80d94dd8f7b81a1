"""The fork floor for ``scripts/bench.py``: one fresh fork per episode, with no harness at all.
Run by path (``python scripts/fork_floor.py SPEC_JSON RESULT_PATH``), as
``scripts/inprocess_ceiling.py`` is, and for the same reason: TraceCore's sandbox guard calls
``inspect.stack()`` on every environment access, so every frame above ``run()`` costs. Imports
``agent_bench`` and the standard library only, nothing of ``tracecore_perf``: the reference is
measured in its own process, never after the measured tool's warm-up, so it cannot move with
the harness it judges.

What it does, all at module level:

1. imports TraceCore's ``run`` and ``persist_run``;
2. runs ONE warm-up episode per scenario row in this process (``run()`` + ``persist_run()``,
   seed = the row's seed, result discarded);
3. for each of the N episodes (row ``i % len(rows)``, seed ``row.seed + i``: the plan of every
   other mode of bench.py) forks a child that runs ``run()`` + ``persist_run()`` and leaves with
   ``os._exit`` (0 passed, 2 not passed, 1 raised); this process waits for it (``os.wait4``) and
   keeps the child's user time, system time and minor page faults from the kernel's accounting.

The child runs ``run()`` exactly one frame below the module, as the ceiling does. No
``gc.freeze()`` or other trick of the harness's zygote is copied here (``"gc_freeze": true`` in
the spec asks for that one, to measure what it is worth; bench.py never sets it). Nothing bounds an
episode's time here, as in the ceiling: a hung episode hangs the command.

The result JSON has the ceiling's keys (``in_run_elapsed_s``, ``passed``, ``failed``), the
children's user / system seconds and minor faults (per-episode medians and sums), and this
process's own CPU: in total and by phase (``start``: interpreter start-up before this file's
first line; ``imports``; ``warmup``; ``loop``: forking and reaping the children).
"""

import resource

_first_line = resource.getrusage(resource.RUSAGE_SELF)

import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

from agent_bench.runner.runlog import persist_run  # noqa: E402
from agent_bench.runner.runner import run  # noqa: E402

_after_imports = resource.getrusage(resource.RUSAGE_SELF)

spec = json.loads(sys.argv[1])
rows, episodes = spec["rows"], spec["episodes"]

for row in rows:  # the warm-up: one episode per row, in this process, discarded
    persist_run(run(row["agent"], row["task_ref"], row["seed"]))
if spec.get("gc_freeze"):
    gc.collect()
    gc.freeze()
_after_warmup = resource.getrusage(resource.RUSAGE_SELF)

passed = failed = 0
user, system, faults = [], [], []
start = time.perf_counter()
for i in range(episodes):
    row = rows[i % len(rows)]
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            artifact = run(row["agent"], row["task_ref"], row["seed"] + i)
            persist_run(artifact)
            code = 0 if artifact.get("success") else 2
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        passed += 1
    else:
        failed += 1
    user.append(usage.ru_utime)
    system.append(usage.ru_stime)
    faults.append(usage.ru_minflt)
elapsed = time.perf_counter() - start
_end = resource.getrusage(resource.RUSAGE_SELF)


def _part(before, after) -> dict:
    return {
        "user_s": round(after.ru_utime - before.ru_utime, 6),
        "sys_s": round(after.ru_stime - before.ru_stime, 6),
        "minor_faults": after.ru_minflt - before.ru_minflt,
    }


_zero = resource.struct_rusage((0.0, 0.0) + (0,) * 14)
result = {
    "in_run_elapsed_s": elapsed,
    "passed": passed,
    "failed": failed,
    "episodes": episodes,
    "gc_freeze": bool(spec.get("gc_freeze")),
    "children": {
        "user_s_median": statistics.median(user) if user else None,
        "sys_s_median": statistics.median(system) if system else None,
        "cpu_s_median": statistics.median([u + s for u, s in zip(user, system, strict=True)]) if user else None,
        "minor_faults_median": statistics.median(faults) if faults else None,
        "user_s": round(sum(user), 6),
        "sys_s": round(sum(system), 6),
        "minor_faults": sum(faults),
    },
    "parent": _part(_zero, _end),
    "parent_phases": {
        "start": _part(_zero, _first_line),
        "imports": _part(_first_line, _after_imports),
        "warmup": _part(_after_imports, _after_warmup),
        "loop": _part(_after_warmup, _end),
    },
}
with open(sys.argv[2], "w") as fh:
    json.dump(result, fh)
