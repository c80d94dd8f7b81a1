"""Fixture: puts a FIFO in the place of its run's series.jsonl (the harness keeps appending
to the file it holds open), then SIGKILLs the harness, once (HOSTILE_VICTIM's folder keeps a
mark). Opening the FIFO to read would block until a writer comes: `--resume` must not."""

import os
import runpy
import signal
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

tools = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))


def plant(run_dir: str) -> str:
    path = os.path.join(run_dir, "series.jsonl")
    os.rename(path, path + ".moved")
    os.mkfifo(path)
    return f"FIFO at {path}"


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        mark = os.path.join(os.path.dirname(os.environ["HOSTILE_VICTIM"]), "killed-once")
        if not os.path.exists(mark):
            open(mark, "w").close()
            tools["tamper_runs"](__file__, plant)
            pid = os.getpid()
            for _ in range(3):  # episode -> worker -> zygote -> harness
                pid = tools["parent_of"](pid)
            if str(pid) != os.environ.get("HOSTILE_SPARE_PID"):
                os.kill(pid, signal.SIGKILL)
        raise RuntimeError("fifo planter raised")
