"""The in-process ceiling for ``scripts/bench.py``: TraceCore's ``run()`` + ``persist_run()``
in a plain loop, no isolation, one core. Run by path (``python scripts/inprocess_ceiling.py
SPEC_JSON RESULT_PATH``), never as ``python -c``: TraceCore's sandbox guard calls
``inspect.stack()`` on every environment access, and a ``<string>`` frame makes each call
dearer, which understated the ceiling (by how much: docs/profile.md, "Small costs measured in
the code"). The loop runs at module level, so ``run()`` sits one frame below the module,
as shallow as an episode of the harness's forkserver mode. Imports ``agent_bench`` only."""

import json
import sys
import time

from agent_bench.runner.runlog import persist_run
from agent_bench.runner.runner import run

spec = json.loads(sys.argv[1])
rows, episodes = spec["rows"], spec["episodes"]
passed = failed = 0
run_only = 0.0
start = time.perf_counter()
for i in range(episodes):
    row = rows[i % len(rows)]
    t = time.perf_counter()
    try:
        artifact = run(row["agent"], row["task_ref"], row["seed"] + i)
    except Exception:
        failed += 1
        continue
    run_only += time.perf_counter() - t
    persist_run(artifact)
    if artifact.get("success"):
        passed += 1
    else:
        failed += 1
elapsed = time.perf_counter() - start
with open(sys.argv[2], "w") as fh:
    json.dump({"in_run_elapsed_s": elapsed, "run_only_s": run_only, "passed": passed, "failed": failed}, fh)
