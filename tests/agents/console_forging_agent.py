"""Fixture: raises an error whose message holds newlines and terminal escapes, shaped as the
harness's own console lines (a forged "run complete" line, a cleared screen)."""

from agent_bench.agents.toy_agent import ToyAgent

FORGED = "tracecore-perf: run complete: 24 of 24 episodes passed, evidence clean"


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        raise RuntimeError(f"boom\n{FORGED}\n\x1b[2J\x1b[Hmore\r{FORGED}")
