"""Installed code under seal: the files episodes load, as they were when the run began.

Every episode is forked from the zygote and loads its agent file by path; TraceCore's own
package is imported by the zygote and, lazily, by episodes. An episode runs as the same user,
so it can change any of them (append to the installed ``agent_bench/agents/toy_agent.py``,
or to another agent file of the scenario), and every later episode, and any zygote started
later, would run the changed code. :class:`CodeSeal` records a SHA-256 of each such file
before the first episode: the scenario's agent files, every file of the episode
interpreter's ``agent_bench`` package (its ``__pycache__`` included: a planted ``.pyc`` runs
as surely as a changed source), and the harness's own fork loop (``episode_process.py``,
``episode_worker.py``). :meth:`CodeSeal.changed` names what differs now. The harness checks
before it starts a replacement worker or zygote (none is started from changed code) and
before it publishes; a change makes the run ``tainted`` and names the files.

Hashing TraceCore 1.1.3's package (131 files, 1.6 MB) takes a few milliseconds.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from tracecore_perf.files import sha256_of
from tracecore_perf.run.spawn import WORKER_SCRIPT

HARNESS_FILES = (WORKER_SCRIPT, WORKER_SCRIPT.with_name("episode_worker.py"), WORKER_SCRIPT.with_name("episode_sandbox.py"))


def _package_files(package_dir: str) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(package_dir):
        dirs.sort()
        found.extend(os.path.join(folder, name) for name in sorted(files))
    return found


class CodeSeal:
    """Digests of the files a run's episodes load, taken when the run began."""

    def __init__(self, agent_files: Iterable[str], package_dir: str | None) -> None:
        self.package_dir = package_dir
        self.files: dict[str, bytes | None] = {}
        for path in [*sorted(set(agent_files)), *map(str, HARNESS_FILES)]:
            self.files[path] = sha256_of(path)
        if package_dir:
            for path in _package_files(package_dir):
                self.files[path] = sha256_of(path)

    def changed(self) -> list[str]:
        """Each sealed file that is now different, gone or no longer a regular file, and each
        file that appeared in the package since (a planted module or ``.pyc``)."""
        found = [path for path, digest in self.files.items() if sha256_of(path) != digest]
        if self.package_dir:
            found += [path for path in _package_files(self.package_dir) if path not in self.files]
        return found


def describe(changed: list[str], shown: int = 5) -> str:
    """One line naming the changed files (the first ``shown``, then how many more)."""
    more = f" and {len(changed) - shown} more" if len(changed) > shown else ""
    return f"installed code changed during the run: {', '.join(changed[:shown])}{more}"
