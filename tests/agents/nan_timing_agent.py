"""Fixture: solves its task as TraceCore's toy agent does, but first has TraceCore's runner
stamp its artifact's ``wall_clock_elapsed_s`` as NaN, which Python's ``json`` writes and reads
(TraceCore's metrics pipeline averages it into its row). One such artifact must not cost the
other agents' metrics."""

import agent_bench.runner.runner as runner
from agent_bench.agents.toy_agent import ToyAgent

_stamp = runner._inject_artifact_hash


def _nan_timing(result: dict) -> dict:
    result["wall_clock_elapsed_s"] = float("nan")
    return _stamp(result)


class Agent(ToyAgent):  # TraceCore's toy agent, untouched, once the runner is patched
    def reset(self, task_spec):
        runner._inject_artifact_hash = _nan_timing
        return super().reset(task_spec)
