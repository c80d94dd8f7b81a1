"""What CPython's perf trampoline (3.12+) adds to a counted episode: each default row's episode
forked from a warmed parent and counted by callgrind as the harness counts it, without the
trampoline and with it (active before the fork, its trampolines compiled by a warm-up episode).
Why explain's Python view counts bytecodes in a replay instead (docs/explain.md).

``python scripts/trampoline_cost.py PYTHON`` (PYTHON: a CPython 3.12+ with TraceCore installed)."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROWS = (("toy_agent.py", "filesystem_hidden_config@1"), ("rate_limit_agent.py", "rate_limited_api@1"))
CHILD = """
import os, sys
import agent_bench
from agent_bench.runner.runner import run
agent = os.path.join(os.path.dirname(agent_bench.__file__), "agents", sys.argv[2])
run(agent, sys.argv[3], 0)
if sys.argv[1] == "perf":
    sys.activate_stack_trampoline("perf")
    run(agent, sys.argv[3], 0)
pid = os.fork()
if pid == 0:
    run(agent, sys.argv[3], 1)
    os._exit(0)
os.waitpid(pid, 0)
print(pid)
"""


def counted(python: str, mode: str, agent: str, task: str, folder: Path) -> int:
    script = folder / "child.py"
    script.write_text(CHILD)
    out = folder / "callgrind.out.%p"
    argv = ["valgrind", "-q", "--tool=callgrind", "--zero-before=PyOS_AfterFork_Child", f"--callgrind-out-file={out}"]
    done = subprocess.run([*argv, python, str(script), mode, agent, task], cwd=folder, capture_output=True, text=True, check=True)
    text = (folder / f"callgrind.out.{done.stdout.strip()}").read_text(errors="replace")
    return int(re.search(r"^summary: (\d+)$", text, re.M).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("python", help="a CPython 3.12+ with TraceCore installed")
    args = parser.parse_args()
    print("| row | instructions | with the perf trampoline | ratio |\n|---|---:|---:|---:|")
    for agent, task in ROWS:
        with tempfile.TemporaryDirectory(prefix="trampoline-cost-") as scratch:
            plain = counted(args.python, "none", agent, task, Path(scratch))
            perf = counted(args.python, "perf", agent, task, Path(scratch))
        print(f"| {agent} on {task} | {plain:,} | {perf:,} | x{perf / plain:.3f} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
