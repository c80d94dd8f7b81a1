"""Helpers shared by the fixture agents in this folder; not an agent (it has no agent class).

Fixture agents are loaded by TraceCore's loader under the module name "openclaw_agent", so
``import hostile_tools`` does not find this file: each fixture loads it next to its own file,
in one line, ``NAME = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))["NAME"]``
(the function it needs from the namespace the file leaves). Functions that look for the
fixture's own run take the fixture's ``__file__``.
"""

import contextlib
import glob
import os
import resource
from collections.abc import Callable


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:  # "pid (comm) state ppid ...": comm may hold spaces
        return int(fh.read().rsplit(")", 1)[1].split()[1])


def cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        return fh.read().replace(b"\0", b" ").decode(errors="replace")


# --- the run directory (fixtures that tamper with the run's files) -----------------------


def _ours(run_dir: str, fixture: str) -> bool:
    """A run directory of a run that has this fixture in its scenario (never anyone else's)."""
    try:
        with open(os.path.join(run_dir, "manifest.json")) as fh:
            return os.path.basename(fixture) in fh.read()
    except OSError:
        return False


def run_dirs(fixture: str) -> list[str]:
    """The run's directory (of a run of ``fixture``, the fixture's ``__file__``), found as a
    hostile agent would: what our ancestors hold open or work in (series.jsonl, logs/, run-*/),
    near the working directories up the chain, and last HOSTILE_RUN_GLOB (the test's fallback)."""
    links, places, pid = [], [os.getcwd(), os.path.dirname(os.getcwd())], os.getpid()
    while pid > 1:
        try:
            places.append(os.readlink(f"/proc/{pid}/cwd"))
            links += [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
            pid = parent_of(pid)
        except OSError:
            break
    found = set()
    for link in links + places:
        parts = link.split(os.sep)
        found.update(os.sep.join(parts[: i + 1]) for i, part in enumerate(parts) if part.startswith("run-"))
    for place in places:
        found.update(glob.glob(os.path.join(glob.escape(place), "run-*")))
        found.update(glob.glob(os.path.join(glob.escape(place), "*", "run-*")))
    found = {path for path in found if _ours(path, fixture)}
    if not found and os.environ.get("HOSTILE_RUN_GLOB"):
        found = {path for path in glob.glob(os.environ["HOSTILE_RUN_GLOB"]) if _ours(path, fixture)}
    return sorted(found)


def tamper_runs(fixture: str, tamper: Callable[[str], str]) -> None:
    """Call ``tamper`` on each run directory of ``fixture``'s run, printing what it says it did."""
    for run_dir in run_dirs(fixture):
        print(tamper(run_dir), flush=True)


def publishing_names(run_dir: str) -> list[str]:
    """The names the run publishes to, and the temporary names it used to write them through:
    ``<output>/perf-<kind>-<stamp>.json``, ``<output>/.perf-<kind>-<stamp>.json.tmp`` and
    ``run-<stamp>/.manifest.json.tmp``."""
    out, stamp = os.path.dirname(run_dir), os.path.basename(run_dir).removeprefix("run-")
    names = [os.path.join(run_dir, ".manifest.json.tmp")]
    for kind in ("manifest", "summary", "metrics", "series", "samples"):
        names += [os.path.join(out, f".perf-{kind}-{stamp}.json.tmp"), os.path.join(out, f"perf-{kind}-{stamp}.json")]
    return names


def delete_in_runs(fixture: str, name: str, remove: Callable[[str], object] = os.remove) -> None:
    """Delete ``name`` in each run directory of ``fixture``'s run with ``remove`` (os.remove, for
    a file; shutil.rmtree for a folder), saying so on stdout."""

    def delete(run_dir: str) -> str:
        remove(os.path.join(run_dir, name))
        return f"deleted {run_dir}/{name}"

    tamper_runs(fixture, delete)


# --- every descriptor (fixtures that forge their result) ---------------------------------


def _open_fds() -> list[int]:
    """Every descriptor from 3 up to the soft RLIMIT_NOFILE (the open ones, when /proc says)."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    try:
        found = sorted(int(name) for name in os.listdir("/proc/self/fd"))
    except OSError:
        found = range(3, limit)
    return [fd for fd in found if 3 <= fd < limit]


def write_everywhere(data: bytes, close: bool = False) -> None:
    """Write ``data`` whole to every file descriptor >= 3 (the result pipe among them), and
    close each one after when ``close``."""
    for fd in _open_fds():
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            pass
        if close:
            with contextlib.suppress(OSError):
                os.close(fd)


# --- the zygote (fixtures that attack it) ------------------------------------------------


def signal_zygote(signum: int, doing: str) -> None:
    """Send ``signum`` to the zygote (the worker's parent: a process of the episode
    interpreter's script), never to anything else, the test runner above all (a scratch
    interpreter's path may hold "pytest"); ``doing`` ("killing", "stopping") says so on stdout."""
    zygote = parent_of(os.getppid())
    if zygote > 1 and "episode_process.py zygote" in cmdline(zygote):
        print(f"{doing} zygote {zygote}: {cmdline(zygote)}", flush=True)
        os.kill(zygote, signum)


# --- the episode clock (trend fixtures) --------------------------------------------------


def episodes_before() -> int:
    """How many episodes of this run started before this one: each episode leaves a file in
    the folder the test names in FIXTURE_CLOCK (episodes run in scratch directories of their
    own, so they share no other place). The count is claimed, not read: episode N creates
    ``episode-N`` exclusively, so two episodes starting at once never see the same count (a
    listing then a create let both see 4 and skip 5)."""
    clock = os.environ["FIXTURE_CLOCK"]
    count = len(os.listdir(clock))
    while True:
        try:
            os.close(os.open(os.path.join(clock, f"episode-{count}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return count
        except FileExistsError:
            count += 1
