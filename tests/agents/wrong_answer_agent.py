"""Fixture: the toy agent with a wrong final answer, so TraceCore records a finished but
failed run: a failure no neighbour may turn into a success."""

from agent_bench.agents.toy_agent import ToyAgent


class Agent(ToyAgent):
    def act(self):
        action = super().act()
        if action.get("type") == "set_output":
            return {"type": "set_output", "args": {"key": "API_KEY", "value": "wrong_value"}}
        return action
