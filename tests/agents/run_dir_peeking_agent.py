"""Fixture: from inside its episode, looks for its run's directory and tries to read it, then
reports what it saw in the error it raises (``peek: {json}``).

It knows where to look as an agent that guessed or learned the output folder would: the test
copies this file next to the run and writes the output folder's absolute paths into
``OUTPUT_DIRS`` (the folder as the user reaches it, through a link or a ``..`` if so, and the
folder the link leads to). For each run directory it finds there (``run-*``), it tries to list
it, to read its manifest and its rows, and to list TraceCore's artifacts in it. Inside a
sandbox that hides the run directory, it finds the directory's name and nothing else."""

import glob
import json
import os

from agent_bench.agents.toy_agent import ToyAgent

OUTPUT_DIRS: list[str] = []  # the test writes the absolute output folders here


def _read(path: str) -> str:
    with open(path) as fh:
        return fh.read(200)


def _peek(run_dir: str) -> list[str]:
    seen = []
    attempts = {
        "listed": lambda: os.listdir(run_dir),
        "manifest": lambda: _read(os.path.join(run_dir, "manifest.json")),
        "series": lambda: _read(os.path.join(run_dir, "series.jsonl")),
        "artifacts": lambda: os.listdir(os.path.join(run_dir, ".agent_bench", "runs")),
    }
    for name, attempt in attempts.items():
        try:
            attempt()
            seen.append(name)
        except OSError:
            continue
    return seen


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() reports and raises
    def act(self):
        found = {}
        for folder in OUTPUT_DIRS:
            for run_dir in sorted(glob.glob(os.path.join(glob.escape(folder), "run-*"))):
                found[run_dir] = _peek(run_dir)
        raise RuntimeError("peek: " + json.dumps(found, sort_keys=True))
