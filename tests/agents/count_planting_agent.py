"""Fixture: TraceCore's toy agent that, in its episode under --instructions, plants a link at
the name of the count file callgrind will write for it (found from its worker's command line),
pointing at a forged count of 1,000 instructions. It runs as the toy agent whatever it
manages, so a forged count would pass for a success."""

import os

from agent_bench.agents.toy_agent import ToyAgent

FORGED = "version: 1\npid: {pid}\npart: 1\ndesc: Trigger: Program termination\nevents: Ir\nsummary: 1000\n"


def _count_folder() -> str | None:
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as fh:
            words = fh.read().decode(errors="replace").split("\0")
    except OSError:
        return None
    for word in words:
        if word.startswith("--callgrind-out-file="):
            return os.path.dirname(word.split("=", 1)[1])
    return None


def _plant() -> list[str]:
    done = []
    folder = _count_folder()
    if folder:
        forged = os.path.join(os.getcwd(), "forged-count")
        with open(forged, "w") as fh:
            fh.write(FORGED.format(pid=os.getpid()))
        os.symlink(forged, os.path.join(folder, f"callgrind.out.{os.getpid()}"))
        done.append("planted")
    return done


class Agent(ToyAgent):
    planted = None

    def act(self):
        if self.planted is None:
            self.planted = _plant()
        return super().act()
