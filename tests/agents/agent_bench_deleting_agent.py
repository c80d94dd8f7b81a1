"""Fixture (issue 9): finds the run directory and deletes its .agent_bench directory (TraceCore's
run artifacts of every episode so far), then raises."""

import glob
import os
import shutil

from agent_bench.agents.toy_agent import ToyAgent

MARKER = "tracecore-perf-containment-fixture"


def _parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:  # "pid (comm) state ppid ...": comm may hold spaces
        return int(fh.read().rsplit(")", 1)[1].split()[1])


def _ours(run_dir: str) -> bool:
    """A run directory of a run that has this fixture in its scenario (never anyone else's)."""
    try:
        with open(os.path.join(run_dir, "manifest.json")) as fh:
            return os.path.basename(__file__) in fh.read()
    except OSError:
        return False


def run_dirs() -> list[str]:
    """The run's directory, found as a hostile agent would: what our ancestors hold open or
    work in (series.jsonl, logs/, run-*/), near the working directories up the chain, and
    last HOSTILE_RUN_GLOB (the test's fallback)."""
    links, places, pid = [], [os.getcwd(), os.path.dirname(os.getcwd())], os.getpid()
    while pid > 1:
        try:
            places.append(os.readlink(f"/proc/{pid}/cwd"))
            links += [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
            pid = _parent_of(pid)
        except OSError:
            break
    found = set()
    for link in links + places:
        parts = link.split(os.sep)
        found.update(os.sep.join(parts[: i + 1]) for i, part in enumerate(parts) if part.startswith("run-"))
    for place in places:
        found.update(glob.glob(os.path.join(glob.escape(place), "run-*")))
        found.update(glob.glob(os.path.join(glob.escape(place), "*", "run-*")))
    found = {path for path in found if _ours(path)}
    if not found and os.environ.get("HOSTILE_RUN_GLOB"):
        found = {path for path in glob.glob(os.environ["HOSTILE_RUN_GLOB"]) if _ours(path)}
    return sorted(found)


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        for run_dir in run_dirs():
            shutil.rmtree(os.path.join(run_dir, ".agent_bench"))
            print(f"deleted {run_dir}/.agent_bench", flush=True)
        raise RuntimeError("artifact deleter raised after deleting the run's .agent_bench")
