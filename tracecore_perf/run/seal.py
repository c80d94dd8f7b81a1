"""Installed code under seal: the files episodes load, as they were when the run began.

Every episode is forked from the zygote and loads its agent file by path; TraceCore's own
package is imported by the zygote and, lazily, by episodes. An episode runs as the same user,
so it can change any of them (append to the installed ``agent_bench/agents/toy_agent.py``,
or to another agent file of the scenario), and every later episode, and any zygote started
later, would run the changed code. :class:`CodeSeal` records a SHA-256 of each such file
before the first episode: the scenario's agent files, every file of the episode
interpreter's ``agent_bench`` package (its ``__pycache__`` included: a planted ``.pyc`` runs
as surely as a changed source; the probe compiles the package first, as ``pip install``
does, so no legitimate ``.pyc`` appears during the run), the harness's own fork loop
(``episode_process.py``, ``episode_worker.py``, ``episode_sandbox.py``), and the episode
interpreter's site directories: their ``.pth`` and ``*customize.py`` files by content, every
other entry by name (a planted top-level module). Each file by content *and* change time, so
a change undone before the check is still seen. :meth:`CodeSeal.changed` names what differs
now. The harness checks before it starts a replacement worker or zygote (none is started
from changed code) and once every process of the run is gone, before TraceCore's metrics
and publishing; a change makes the run ``tainted`` and names the files. Not sealed: the
insides of other installed packages (TraceCore's dependencies) and the standard library.

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


# What a site directory holds that runs in every interpreter started from it: .pth files (their
# import lines run at start-up) and the customize modules. Every other top-level entry is a
# module or package someone may import: those are sealed by name (one appearing is a change).
_STARTUP = (".pth", "sitecustomize.py", "usercustomize.py")


def _site_entries(site_dir: str) -> list[str]:
    try:
        return sorted(os.listdir(site_dir))
    except OSError:
        return []


def _identity(path: str) -> tuple[int, int, int] | None:
    """A file's size, inode and change time: a change put back afterwards (the same bytes, the
    old modification time) still moves the change time, which no one can set."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info.st_size, info.st_ino, info.st_ctime_ns


def _stamp(path: str) -> tuple[tuple[int, int, int] | None, bytes | None]:
    return _identity(path), sha256_of(path)


def _differs(path: str, stamp: tuple[tuple[int, int, int] | None, bytes | None]) -> bool:
    """Whether ``path`` is not what ``stamp`` recorded; hashed only when size, inode and change
    time all still match (a file stretched to a terabyte is never read)."""
    identity, digest = stamp
    return _identity(path) != identity or sha256_of(path) != digest


class CodeSeal:
    """Digests of the files a run's episodes load, taken when the run began."""

    def __init__(self, agent_files: Iterable[str], package_dir: str | None, site_dirs: Iterable[str] = ()) -> None:
        self.package_dir = package_dir
        self.site_dirs = {folder: _site_entries(folder) for folder in site_dirs}
        paths = [*sorted(set(agent_files)), *map(str, HARNESS_FILES)]
        if package_dir:
            paths += _package_files(package_dir)
        for folder, names in self.site_dirs.items():
            paths += [os.path.join(folder, name) for name in names if name.endswith(_STARTUP)]
        self.files = {path: _stamp(path) for path in paths}

    def changed(self) -> list[str]:
        """Each sealed file that is now different, gone, no longer a regular file or written
        to at all; each file that appeared in the package since (a planted module or ``.pyc``);
        and each entry that appeared in or left a site directory (a ``.pth``, a module)."""
        found = [path for path, stamp in self.files.items() if _differs(path, stamp)]
        if self.package_dir:
            found += [path for path in _package_files(self.package_dir) if path not in self.files]
        for folder, names in self.site_dirs.items():
            now = _site_entries(folder)
            found += [os.path.join(folder, name) for name in sorted(set(now) ^ set(names))]
        return found


def describe(changed: list[str], shown: int = 5) -> str:
    """One line naming the changed files (the first ``shown``, then how many more)."""
    more = f" and {len(changed) - shown} more" if len(changed) > shown else ""
    return f"installed code changed during the run: {', '.join(changed[:shown])}{more}"
