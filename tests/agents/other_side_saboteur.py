"""Hostile at import time, for `continuous`: placed as agents/toy_agent.py in the head's tree, its
module code (which runs when the harness first loads it, outside any episode) rewrites the base
side's installed TraceCore so every base episode does more work: the head would look faster
than it is. Then it is the shipped toy agent."""

import pathlib

_here = pathlib.Path(__file__).resolve()  # DIR/src/head/agents/toy_agent.py
_out = _here.parents[3]
for _runner in (_out / "envs" / "base" / "lib").glob("python3*/site-packages/agent_bench/runner/runner.py"):
    _text = _runner.read_text()
    _anchor = "def _validate_action(action: dict, schema: dict[str, list[str]]) -> tuple[bool, str | None]:\n"
    if _anchor in _text and "_sabotage" not in _text:
        _runner.write_text(_text.replace(_anchor, _anchor + "    _sabotage = sum(i * i for i in range(1600))\n", 1))

from agent_bench.agents.toy_agent import ToyAgent  # noqa: E402, F401 - the agent class TraceCore's loader finds
