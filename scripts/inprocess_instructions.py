"""Reference instruction count of a TraceCore episode, with no harness around it.

Counts, with Valgrind's callgrind, the user-space instructions of TraceCore's own
``run(agent, task_ref, seed)`` (with ``--persist``: ``run()`` + ``persist_run()``), each
episode in a child forked from a warmed process. This is what the harness's
``--instructions`` mode is checked against: whatever it reports above this is harness cost.

    python scripts/inprocess_instructions.py [--agent A] [--task T] [--episodes N] [--first-seed S]
        [--seed-step K] [--persist] [--json]

Run by path with any interpreter that has TraceCore installed; standard library only.
"""

import os
import sys

if sys.argv[1:2] == ["--child"]:
    # Under valgrind. This comes first in the file, at module level, on purpose: TraceCore's
    # sandbox guard calls inspect.stack() on every environment access, and for each frame
    # on the stack inspect walks its code up to where it stands; this frame stands a few
    # dozen instructions in, as the harness's episode_process.py does.
    workdir, agent, task, first_seed, step, episodes, persist = sys.argv[2:9]
    os.chdir(workdir)  # persist_run() writes to ./.agent_bench/runs
    from agent_bench.runner.runner import run

    if persist == "1":
        from agent_bench.runner.runlog import persist_run
    warm = run(agent, task, int(first_seed))  # warm-up, discarded: first-call imports, caches
    if persist == "1":
        persist_run(warm)
    del warm
    children = []
    for seed in range(int(first_seed), int(first_seed) + int(episodes) * int(step), int(step)):
        pid = os.fork()  # callgrind zeroes the child's counters here (PyOS_AfterFork_Child)
        if pid == 0:
            try:
                result = run(agent, task, seed)
                if persist == "1":
                    persist_run(result)
            except BaseException:
                os._exit(1)
            # No interpreter teardown: it is not part of an episode. 3: ran, did not succeed.
            os._exit(0 if result.get("success") else 3)
        _, status = os.waitpid(pid, 0)  # one at a time: no sharing of the core between episodes
        children.append({"seed": seed, "pid": pid, "exit": os.waitstatus_to_exitcode(status)})
    import json

    with open(os.path.join(workdir, "children.json"), "w") as fh:
        json.dump(children, fh)
    os._exit(0)

import argparse  # noqa: E402 - the child above must stand as early in the file as it can
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
from importlib.metadata import PackageNotFoundError, version  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--agent", default="agents/toy_agent.py")
parser.add_argument("--task", default="filesystem_hidden_config@1")
parser.add_argument("--episodes", type=int, default=8, help="episodes (default 8)")
parser.add_argument("--first-seed", type=int, default=0, help="the first episode's seed (default 0)")
parser.add_argument(
    "--seed-step",
    type=int,
    default=1,
    help="seeds FIRST, FIRST+STEP, ... (default 1; a harness run of the 4-row "
    "default scenario gives row r the seeds row.seed + r + 4k: --first-seed row.seed+r --seed-step 4)",
)
parser.add_argument("--persist", action="store_true", help="also call persist_run()")
parser.add_argument("--json", action="store_true", help="print one JSON object")
args = parser.parse_args()

# --- launcher: re-run this file under callgrind, then read each child's count ---------------
valgrind = shutil.which("valgrind")
if valgrind is None:
    print("error: valgrind is not on PATH (apt-get install valgrind)", file=sys.stderr)
    sys.exit(2)
if args.episodes < 1:
    parser.error("--episodes must be at least 1")

try:
    tracecore_version = version("tracecore")
except PackageNotFoundError:
    print(f"error: tracecore is not installed for {sys.executable}", file=sys.stderr)
    sys.exit(2)

agent = args.agent
if os.path.exists(agent):  # a local agent file; the child runs in a temp dir
    agent = os.path.abspath(agent)
workdir = tempfile.mkdtemp(prefix="inprocess-instructions-")
try:
    cmd = [
        valgrind, "-q", "--tool=callgrind", "--zero-before=PyOS_AfterFork_Child",
        f"--callgrind-out-file={workdir}/callgrind.out.%p",
        sys.executable, os.path.abspath(__file__), "--child", workdir,
        agent, args.task, str(args.first_seed), str(args.seed_step), str(args.episodes), "1" if args.persist else "0",
    ]  # fmt: skip
    # A fixed hash seed: set/dict iteration order, and so the instruction count, repeats.
    proc = subprocess.run(cmd, env=dict(os.environ, PYTHONHASHSEED="0"))
    try:
        with open(os.path.join(workdir, "children.json")) as fh:
            children = json.load(fh)
    except OSError:
        print(f"error: the run under valgrind failed (exit {proc.returncode})", file=sys.stderr)
        sys.exit(1)
    for child in children:
        child["instructions"] = None
        try:
            with open(os.path.join(workdir, f"callgrind.out.{child['pid']}"), "rb") as fh:
                header = fh.read(8192)
        except OSError:
            continue
        # summary: is everything the child executed after the zeroing; totals: also counts
        # the frames that were live at the fork, so it is not the episode's cost.
        match = re.search(rb"^summary: (\d+)$", header, re.MULTILINE)
        child["instructions"] = int(match.group(1)) if match else None
finally:
    shutil.rmtree(workdir, ignore_errors=True)

for child in children:
    child["success"] = child["exit"] == 0
bad = [c for c in children if c["exit"] not in (0, 3) or c["instructions"] is None]
if bad:
    print(f"error: {len(bad)} episode(s) failed or wrote no count: {bad}", file=sys.stderr)
    sys.exit(1)
counts = [c["instructions"] for c in children]
valgrind_version = subprocess.run([valgrind, "--version"], capture_output=True, text=True).stdout.strip()
what = "run()+persist_run()" if args.persist else "run()"
report = {
    "python": sys.version.split()[0],
    "tracecore": tracecore_version,
    "valgrind": valgrind_version,
    "agent": args.agent,
    "task": args.task,
    "measured": what,
    "episodes": children,
    "median": int(statistics.median(counts)),
    "min": min(counts),
    "max": max(counts),
}
if args.json:
    print(json.dumps(report))
else:
    print(
        f"python {report['python']}, tracecore {tracecore_version}: {args.agent} on {args.task}, "
        f"{what}: median {report['median']:,} instructions/episode "
        f"(min {report['min']:,}, max {report['max']:,}, {len(counts)} episodes, "
        f"{sum(c['success'] for c in children)} succeeded)"
    )
