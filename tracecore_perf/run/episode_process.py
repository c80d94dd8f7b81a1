"""The episode interpreter's entry point: ``python episode_process.py zygote ISOLATION
HARNESS_PID`` starts a run's zygote, ``... episode JOB RESULT_FD`` is a spawned episode,
``... check-agent JOB`` checks one agent file before a run (``episode/probe.py``).
Standard library only, like the ``episode/`` package beside it, which it loads from source
under the name ``tracecore_perf_episode`` (:func:`load_episode_side`) and which holds every
role (``episode/zygote.py``'s ``serve``); an episode process comes back here to run its
episode.

Why so short, and why ``run()`` is called from this module's frame: TraceCore's sandbox
guard calls ``inspect.stack()`` on every environment access, and for every frame on the
stack inspect walks that frame's code positions from its start up to the instruction it
stands at. A frame of ours under ``run()`` costs the episode on every call, the more the
further into its code it stands: the fork loop at the bottom of the 1,000-line module the
roles once were was a fifth of a toy episode's instructions. Here this module's frame is the
only one under ``run()``, a few dozen instructions in.
"""

import os
import sys
import time


def load_episode_side():
    """The ``episode/`` package beside this file, imported as ``tracecore_perf_episode`` with
    every role loaded; returns its ``zygote`` module (``serve``, ``finish``). Nothing of it
    from ``__pycache__``: each module is compiled from its source, which is what the run seals
    (a planted .pyc with a matching header would run instead of it). Works in an interpreter
    that has nothing of tracecore_perf installed. Tools that want the package without running
    this module's code below take the function alone (``tests/test_layers.py``)."""
    import importlib
    import importlib.machinery
    import importlib.util  # noqa: F401 - loaded before the zygote tells its imports from TraceCore's (warmup.harness_imports), as it always was: TraceCore's agent loader uses it in every episode

    package_name = "tracecore_perf_episode"  # the package's name in the episode interpreter

    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0]) == here:
        del sys.path[0]  # running by path put our folder on sys.path; nothing may import from it
    folder = os.path.join(here, "episode")

    class SourceOnly(importlib.machinery.SourceFileLoader):
        def get_code(self, fullname):
            path = self.get_filename(fullname)
            return compile(self.get_data(path), path, "exec")

    class SourceFinder:
        """Finds this package's modules (its ``__path__`` is empty, so nothing else does),
        last on sys.meta_path, and names those it found (``names``); an episode process takes
        them and it out (``warmup.forget_episode_side``)."""

        def __init__(self):
            self.names = []

        def find_spec(self, fullname, path=None, target=None):  # noqa: ARG002 - the finder protocol
            if fullname == package_name:
                name = "__init__"
            elif fullname.startswith(package_name + ".") and fullname.count(".") == 1:
                name = fullname.rpartition(".")[2]
            else:
                return None
            location = os.path.join(folder, f"{name}.py")
            if not os.path.isfile(location):
                return None
            # ModuleSpec itself: spec_from_file_location would fill an empty __path__ with the folder
            spec = importlib.machinery.ModuleSpec(fullname, SourceOnly(fullname, location), origin=location)
            spec.has_location = True
            if fullname == package_name:
                spec.submodule_search_locations = []
            self.names.append(fullname)
            return spec

    finder = SourceFinder()
    sys.meta_path.insert(0, finder)  # first: nothing on sys.path stands in for the package
    package = importlib.import_module(package_name)
    package.source_finder = finder
    zygote = importlib.import_module(f"{package_name}.zygote")
    sys.meta_path.remove(finder)  # then last: every other import pays nothing for it
    sys.meta_path.append(finder)
    return zygote


# The same instructions, in the same order, as when the roles were one file (see above).
job = (worker := load_episode_side()).serve(sys.argv)  # returns only in an episode process
started = time.perf_counter()
try:
    from agent_bench.runner.runner import run

    artifact = run(job["agent"], job["task_ref"], int(job["seed"]))
except BaseException as exc:  # noqa: BLE001 - an agent may raise anything, SystemExit included
    artifact = exc
worker.finish(artifact, time.perf_counter() - started)
