"""Fixture: moves its run's directory aside and puts a link to a folder outside the run
(HOSTILE_VICTIM's folder) in its place, with the series and samples hard-linked there (same
files, so the writer's open files still match) and `.agent_bench` moved there. Then raises.
The harness must write nothing into that folder and must not publish the run as clean."""

import os
import runpy
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

tools = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))


def relink(run_dir: str) -> str:
    target = os.path.dirname(os.environ["HOSTILE_VICTIM"])
    for name in ("series.jsonl", "samples.jsonl"):
        os.link(os.path.join(run_dir, name), os.path.join(target, name))
    os.rename(os.path.join(run_dir, ".agent_bench"), os.path.join(target, ".agent_bench"))
    os.rename(run_dir, os.path.join(os.path.dirname(run_dir), ".moved-" + os.path.basename(run_dir)))
    os.symlink(target, run_dir)
    return f"{run_dir} -> {target}"


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        tools["tamper_runs"](__file__, relink)
        raise RuntimeError("run directory relinker raised after relinking")
