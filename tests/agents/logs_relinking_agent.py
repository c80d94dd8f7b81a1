"""Fixture: replaces its run's ``logs`` folder with a link to a folder outside the run
(HOSTILE_VICTIM's folder), then kills its zygote, so a new one opens ``logs/workers.log``.
Then raises. Nothing may be written through the link."""

import os
import runpy
import shutil
import signal
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

tools = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))


def relink(run_dir: str) -> str:
    logs = os.path.join(run_dir, "logs")
    shutil.rmtree(logs)
    os.symlink(os.path.dirname(os.environ["HOSTILE_VICTIM"]), logs)
    return f"{logs} -> elsewhere"


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        tools["tamper_runs"](__file__, relink)
        tools["signal_zygote"](signal.SIGKILL, "killing")
        raise RuntimeError("logs relinker raised after relinking and killing the zygote")
