"""Fixture: plants bytecode for the harness's fork loop: ``episode/__pycache__/zygote.*.pyc``
in the package beside the zygote's script, compiled from the real source plus a line that leaves a mark
(HOSTILE_VICTIM's folder, ``pyc-ran``) when it runs, with the source's mtime and size in its
header, so an import would take it for the source. Then kills the zygote, so a new one loads
the fork loop again. Then raises."""

import importlib.util
import os
import runpy
import signal
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

tools = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))


def plant() -> str:
    zygote = tools["parent_of"](os.getppid())
    script = tools["cmdline"](zygote).split()[1]  # `python .../episode_process.py zygote ...`
    source = os.path.join(os.path.dirname(script), "episode", "zygote.py")
    mark = os.path.join(os.path.dirname(os.environ["HOSTILE_VICTIM"]), "pyc-ran")
    with open(source) as fh:
        code = compile(fh.read() + f"\nopen({mark!r}, 'w').close()\n", source, "exec")
    pyc = importlib.util.cache_from_source(source)
    os.makedirs(os.path.dirname(pyc), exist_ok=True)
    info = os.stat(source)
    with open(pyc, "wb") as fh:  # the header an import checks: magic, flags, source mtime and size
        fh.write(importlib.util.MAGIC_NUMBER + (0).to_bytes(4, "little"))
        fh.write(int(info.st_mtime).to_bytes(4, "little") + (info.st_size & 0xFFFFFFFF).to_bytes(4, "little"))
        import marshal

        fh.write(marshal.dumps(code))
    return pyc


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        print(f"planted {plant()}", flush=True)
        tools["signal_zygote"](signal.SIGKILL, "killing")
        raise RuntimeError("fork loop bytecode planter raised after planting and killing the zygote")
