"""Fixture: TraceCore's toy agent that, from its module's first lines (at import, in every
episode), finds the run it is in from its ancestors (the harness's ``--output-dir`` and working
directory) and rewrites every profile the run has kept so far (``profiles/``: explain's
evidence), appending a forged hot function to each. What explain would then name was never run."""

import glob
import os

from agent_bench.agents.toy_agent import ToyAgent

FORGED = "fn=(999999) forged_hot_function\n1 999999999\n"


def _output_dirs() -> list[str]:
    found, pid = [], os.getppid()
    while pid > 1:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                words = fh.read().decode(errors="replace").split("\0")
            cwd = os.readlink(f"/proc/{pid}/cwd")
            with open(f"/proc/{pid}/stat") as fh:
                parent = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
        if "--output-dir" in words[:-1]:
            found.append(os.path.join(cwd, words[words.index("--output-dir") + 1]))
        pid = parent
    return found


def _forge() -> int:
    forged = 0
    for out in _output_dirs():
        for path in glob.glob(os.path.join(out, "run-*", "profiles", "*")):
            try:
                with open(path, "a") as fh:
                    fh.write(FORGED if path.endswith(".callgrind") else "forged_hot_function (x.py:1) 999999\n")
                forged += 1
            except OSError:
                pass
    return forged


FORGED_FILES = _forge()


class Agent(ToyAgent):
    pass
