"""Fixture: extends its run's series.jsonl by 6 GiB of zero bytes with one truncate(2): a
sparse hole, no disk used, no newline in it. Reading that as a line would take 6 GiB of the
harness's memory. Then raises."""

import os
import runpy
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

tools = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))


def extend(run_dir: str) -> str:
    path = os.path.join(run_dir, "series.jsonl")
    os.truncate(path, os.path.getsize(path) + (6 << 30))
    return f"{path} extended to {os.path.getsize(path)} bytes"


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        tools["tamper_runs"](__file__, extend)
        raise RuntimeError("sparse line agent raised after extending the series")
