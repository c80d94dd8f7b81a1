"""Fixture: plants FIFOs at every name the harness publishes to and at the temporary names it
used to write them through, then raises. Opening any of them to write blocks until someone
reads: publishing must neither wait on them nor lose the run."""

import os
import runpy
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

tools = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))
KINDS = ("manifest", "summary", "metrics", "series", "samples")


def plant(run_dir: str) -> str:
    out, stamp = os.path.dirname(run_dir), os.path.basename(run_dir).removeprefix("run-")
    names = [os.path.join(run_dir, ".manifest.json.tmp")]
    for kind in KINDS:
        names += [os.path.join(out, f".perf-{kind}-{stamp}.json.tmp"), os.path.join(out, f"perf-{kind}-{stamp}.json")]
    for name in names:
        if not os.path.lexists(name):
            os.mkfifo(name)
    return f"planted {len(names)} FIFOs"


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        tools["tamper_runs"](__file__, plant)
        raise RuntimeError("publish FIFO planter raised after planting FIFOs")
