"""Installed code under seal: the files episodes load, as they were when the run began.

Every episode is forked from the zygote and loads its agent file by path; TraceCore's own
package is imported by the zygote and, lazily, by episodes. An episode runs as the same user,
so it can change any of them (append to the installed ``agent_bench/agents/toy_agent.py``,
or to another agent file of the scenario), and every later episode, and any zygote started
later, would run the changed code. :class:`CodeSeal` records a SHA-256 of each such file
before the first episode: the scenario's agent files, every file of the packages TraceCore
installs (``agent_bench``, and ``tasks``, whose validators decide success; their
``__pycache__`` included: a planted ``.pyc`` runs as surely as a changed source; the probe
compiles them first, as ``pip install`` does, so no legitimate ``.pyc`` appears during the
run), the harness's own fork loop
(``episode_process.py`` and the ``episode/`` package's modules), and the episode
interpreter's site directories: their ``.pth`` and ``*customize.py`` files by content, every
other entry by name (a planted top-level module). Each file by content *and* change time, so
a change undone before the check is still seen. The other installed packages the zygote
loaded code from (what the worker's verdict runs on: jsonschema, jsonschema-rs, msgspec; and
TraceCore's dependencies) by size, inode and change time. :meth:`CodeSeal.changed` names what differs
now. The harness checks before it starts a replacement worker or zygote (none is started
from changed code) and once every process of the run is gone, before TraceCore's metrics
and publishing; a change makes the run ``tainted`` and names the files. Everything is
stamped before any agent's module runs (``harness.validate``: between the probe that names
the code and the one that loads the agents). Not sealed: the standard library; installed
packages the zygote had not loaded by then; bytecode kept elsewhere (``PYTHONPYCACHEPREFIX``).
A loaded package's file whose change time moves for another reason reads as a change: a
hard link to it made or removed meanwhile (uv and conda install by hard links).

What sealing and each check cost is measured in docs/profile.md ("Small costs measured in the code").
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from tracecore_perf.files import sha256_of
from tracecore_perf.run.spawn import WORKER_SCRIPT

HARNESS_FILES = (WORKER_SCRIPT, *sorted(WORKER_SCRIPT.with_name("episode").glob("*.py")))


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


def _files(entry: str) -> list[str]:
    """A package folder's files, or a single-file module itself."""
    return _package_files(entry) if os.path.isdir(entry) else [entry]


class CodeSeal:
    """Digests of the files a run's episodes load, taken when the run began.

    ``package_dirs``: TraceCore's packages (``agent_bench``, ``tasks``), by content and change
    time. ``loaded_packages``: the other installed packages the zygote loaded code from (the
    worker's verdict runs on jsonschema, jsonschema-rs and msgspec), by size, inode and change
    time only: any write or replacement moves one of them, and hashing jsonschema-rs's 15 MB
    library at each check would cost more than the rest of the seal."""

    def __init__(
        self,
        agent_files: Iterable[str],
        package_dirs: Iterable[str],
        site_dirs: Iterable[str] = (),
        loaded_packages: Iterable[str] = (),
    ) -> None:
        self.package_dirs = [folder for folder in dict.fromkeys(package_dirs) if folder]
        self.loaded_packages = list(dict.fromkeys(loaded_packages))
        self.site_dirs = {folder: _site_entries(folder) for folder in site_dirs}
        paths = [*sorted(set(agent_files)), *map(str, HARNESS_FILES)]
        for folder in self.package_dirs:
            paths += _package_files(folder)
        for folder, names in self.site_dirs.items():
            paths += [os.path.join(folder, name) for name in names if name.endswith(_STARTUP)]
        self.files = {path: _stamp(path) for path in paths}
        self.identities = {path: _identity(path) for entry in self.loaded_packages for path in _files(entry)}

    def changed(self) -> list[str]:
        """Each sealed file that is now different, gone, no longer a regular file or written
        to at all; each file that appeared in a sealed package since (a planted module or
        ``.pyc``); and each entry that appeared in or left a site directory (a ``.pth``, a
        module)."""
        found = [path for path, stamp in self.files.items() if _differs(path, stamp)]
        for folder in self.package_dirs:
            found += [path for path in _package_files(folder) if path not in self.files]
        found += [path for path, identity in self.identities.items() if _identity(path) != identity]
        for entry in self.loaded_packages:
            found += [path for path in _files(entry) if path not in self.identities]
        for folder, names in self.site_dirs.items():
            now = _site_entries(folder)
            found += [os.path.join(folder, name) for name in sorted(set(now) ^ set(names))]
        return found


def describe(changed: list[str], shown: int = 5) -> str:
    """One line naming the changed files (the first ``shown``, then how many more)."""
    more = f" and {len(changed) - shown} more" if len(changed) > shown else ""
    return f"installed code changed during the run: {', '.join(changed[:shown])}{more}"
