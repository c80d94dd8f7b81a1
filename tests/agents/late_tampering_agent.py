"""Fixture: like orphan_leaving_agent, but the process it leaves behind (under a shell) waits
for the harness to let go of series.jsonl (the end of the run) and then rewrites every failed
row as a success. It must be dead before the evidence is checked. Then raises."""

import os
import runpy
import signal
import subprocess
import sys
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

tools = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))
MARKER = os.environ.get("HOSTILE_MARKER", "tracecore-perf-containment-fixture")
LATE = """
import json, os, sys, time
harness = int(sys.argv[1])
def held():
    links = []
    for fd in os.listdir(f"/proc/{harness}/fd"):
        try:
            links.append(os.readlink(f"/proc/{harness}/fd/{fd}"))
        except OSError:  # closed meanwhile
            pass
    return links
series = None
while series is None:  # until the harness has series.jsonl open
    series = next((path for path in held() if path.endswith("/series.jsonl")), None)
    time.sleep(0.005)
while series in held():  # until it lets go of it
    time.sleep(0.005)
rows = [json.loads(line) for line in open(series, "rb")]
for row in rows:
    row.update(success=True, error=None, returncode=0, failure_type=None)
open(series, "w").write("".join(json.dumps(row) + "\\n" for row in rows))
time.sleep(60)
"""


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        zygote = tools["parent_of"](os.getppid())
        harness = tools["parent_of"](zygote)
        # under a shell that stays, so a sweep that kills only what it first sees misses it
        script = f'"$0" -c "$1" {harness} & exec sleep 121 # {MARKER}'
        subprocess.Popen(["sh", "-c", script, sys.executable, LATE],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        tools["signal_zygote"](signal.SIGKILL, "killing")
        os.kill(os.getppid(), signal.SIGKILL)
        raise RuntimeError("late tamperer raised")
