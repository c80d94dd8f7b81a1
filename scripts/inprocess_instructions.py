"""Reference instruction count of a TraceCore episode, with no harness around it.

Counts, with Valgrind's callgrind, the user-space instructions of TraceCore's own
``run(agent, task_ref, seed)`` (with ``--persist``: ``run()`` + ``persist_run()``), each
episode in a child forked from a warmed process. This is what the harness's
``--instructions`` mode is checked against: whatever it reports above this is harness cost.

    python scripts/inprocess_instructions.py [--agent A] [--task T] [--episodes N] [--persist] [--json]

Run by path with any interpreter that has TraceCore installed; standard library only.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--agent", default="agents/toy_agent.py")
parser.add_argument("--task", default="filesystem_hidden_config@1")
parser.add_argument("--episodes", type=int, default=8, help="seeds 0..N-1 (default 8)")
parser.add_argument("--persist", action="store_true", help="also call persist_run()")
parser.add_argument("--json", action="store_true", help="print one JSON object")
parser.add_argument("--child", metavar="DIR", help=argparse.SUPPRESS)  # the run under valgrind
args = parser.parse_args()

if args.child:
    # Under valgrind. Everything below runs at module level on purpose: TraceCore's sandbox
    # guard calls inspect.stack() on every environment access, so each extra frame above
    # run() adds instructions that are ours, not TraceCore's.
    os.chdir(args.child)  # persist_run() writes to ./.agent_bench/runs
    from agent_bench.runner.runner import run

    if args.persist:
        from agent_bench.runner.runlog import persist_run
    # Warm-up, discarded: first-call imports, task/agent module compilation, caches.
    warm = run(args.agent, args.task, 0)
    if args.persist:
        persist_run(warm)
    del warm
    children = []
    for seed in range(args.episodes):
        pid = os.fork()  # callgrind zeroes the child's counters here (PyOS_AfterFork_Child)
        if pid == 0:
            try:
                result = run(args.agent, args.task, seed)
                if args.persist:
                    persist_run(result)
            except BaseException:
                os._exit(1)
            # No interpreter teardown: it is not part of an episode. 3: ran, did not succeed.
            os._exit(0 if result.get("success") else 3)
        _, status = os.waitpid(pid, 0)  # one at a time: no sharing of the core between episodes
        children.append({"seed": seed, "pid": pid, "exit": os.waitstatus_to_exitcode(status)})
    with open(os.path.join(args.child, "children.json"), "w") as fh:
        json.dump(children, fh)
    os._exit(0)

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
        "--agent", agent, "--task", args.task, "--episodes", str(args.episodes),
    ] + (["--persist"] if args.persist else [])
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
