"""Fixture: the toy agent, plus one recorded LLM call per step (TraceCore copies the
agent's ``llm_trace`` into each action-trace entry)."""

from agent_bench.agents.toy_agent import ToyAgent

PROMPT = "Which file holds API_KEY? Answer with a path. ✓"
COMPLETION = "/app/config/secret.env"
TOKENS = 17


class Agent(ToyAgent):
    def act(self):
        action = super().act()
        self.llm_trace = [{"request": {"prompt": PROMPT}, "response": {"completion": COMPLETION, "tokens_used": TOKENS}}]
        return action
