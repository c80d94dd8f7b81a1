"""Fixture (issue 9): finds the run's series.jsonl and appends a success row for every episode
index of the run (its own among them, before its real row lands), plus a copy of a sample
line to samples.jsonl, then raises. Forged lines carry MARKER under "_forged"."""

import glob
import json
import os

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


TEMPLATE = {
    "episode": 1, "episode_index": 0, "agent": "", "task_ref": "", "seed": 0, "success": True, "wall_clock_s": 0.05,
    "error": None, "artifact_bytes": 4000, "llm_trace_entries": 0, "prompt_bytes": 0, "completion_bytes": 0,
    "tokens_used": 0, "episode_s": 0.04, "queue_s": 0.0, "started_s": 0.0, "cpu_user_s": 0.02, "cpu_sys_s": 0.01,
    "max_rss_bytes": 20000000, "returncode": 0, "timed_out": False, "scenario_row": 0, "run_id": None,
    "failure_type": None, "output_bytes": 0, "attempt": 1,
}  # fmt: skip


def forge(run_dir: str) -> int:
    with open(os.path.join(run_dir, "manifest.json")) as fh:
        manifest = json.load(fh)
    scenario = manifest["scenario"]
    series = os.path.join(run_dir, "series.jsonl")
    template = dict(TEMPLATE)
    if os.path.exists(series):
        with open(series) as fh:
            first = fh.readline()
        if first.strip():
            template.update(json.loads(first))
    lines = []
    for index in range(int(manifest["episodes"])):
        row = scenario[index % len(scenario)]
        forged = dict(template, episode=index + 1, episode_index=index, scenario_row=index % len(scenario))
        forged.update(agent=row["agent"], task_ref=row["task_ref"], seed=int(row.get("seed", 0)) + index)
        forged.update(success=True, error=None, failure_type=None, timed_out=False, returncode=0, run_id="forged")
        forged["_forged"] = MARKER
        lines.append(json.dumps(forged) + "\n")
    with open(series, "a") as fh:
        fh.write("".join(lines))
    samples = os.path.join(run_dir, "samples.jsonl")
    if os.path.exists(samples):
        with open(samples) as fh:
            first = fh.readline()
        if first.strip():
            with open(samples, "a") as fh:
                fh.write(json.dumps(dict(json.loads(first), _forged=MARKER)) + "\n")
    return len(lines)


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        for run_dir in run_dirs():
            print(f"appended {forge(run_dir)} forged rows to {run_dir}/series.jsonl", flush=True)
        raise RuntimeError("series appender raised after forging success rows")
