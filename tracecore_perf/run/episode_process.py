"""The episode interpreter's entry point: ``python episode_process.py zygote ISOLATION
HARNESS_PID`` starts a run's zygote, ``... episode JOB RESULT_FD`` is a spawned episode,
``... check-agent JOB`` checks one agent file before a run (``agent_check.py``).
Standard library only, like ``episode_worker.py``, which it loads by path and which holds
every role (``serve``); an episode process comes back here to run its episode.

Why so short, and why ``run()`` is called from this module's frame: TraceCore's sandbox
guard calls ``inspect.stack()`` on every environment access, and for every frame on the
stack inspect walks that frame's code positions from its start up to the instruction it
stands at. A frame of ours under ``run()`` costs the episode on every call, the more the
further into its code it stands: the fork loop at the bottom of the 1,000-line
``episode_worker.py`` was a fifth of a toy episode's instructions. Here this module's frame
is the only one under ``run()``, a few dozen instructions in.
"""

import os
import sys
import time


def _load_worker():
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0]) == here:
        del sys.path[0]  # running by path put our folder on sys.path; nothing may import from it
    path = os.path.join(here, "episode_worker.py")
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location("tracecore_perf_episode_worker", path))
    # Compiled from its source, never from __pycache__: the source is what the run seals (a
    # planted .pyc with a matching header would run instead of it).
    with open(path, "rb") as fh:
        exec(compile(fh.read(), path, "exec"), module.__dict__)  # noqa: S102 - our own file
    return module


job = (worker := _load_worker()).serve(sys.argv)  # returns only in an episode process
started = time.perf_counter()
try:
    from agent_bench.runner.runner import run

    artifact = run(job["agent"], job["task_ref"], int(job["seed"]))
except BaseException as exc:  # noqa: BLE001 - an agent may raise anything, SystemExit included
    artifact = exc
worker.finish(artifact, time.perf_counter() - started)
