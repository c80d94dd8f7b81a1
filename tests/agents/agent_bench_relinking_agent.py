"""Fixture: replaces its run's `.agent_bench` folder with a link to a folder outside the run
(HOSTILE_VICTIM's folder, which holds a `runs/` folder with someone's file), having moved the
artifacts already placed there first. Then raises. No artifact may be written there, and the
harness must not move that someone's file away."""

import os
import runpy
import shutil
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

tools = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))


def relink(run_dir: str) -> str:
    target = os.path.dirname(os.environ["HOSTILE_VICTIM"])
    link = os.path.join(run_dir, ".agent_bench")
    for name in os.listdir(os.path.join(link, "runs")):
        shutil.move(os.path.join(link, "runs", name), os.path.join(target, "runs", name))
    shutil.rmtree(link)
    os.symlink(target, link)
    return f"{link} -> {target}"


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        tools["tamper_runs"](__file__, relink)
        raise RuntimeError("agent_bench relinker raised after relinking")
