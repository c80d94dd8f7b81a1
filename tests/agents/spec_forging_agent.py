"""Fixture: solves its task as TraceCore's toy agent does, but first has TraceCore's runner
stamp its artifact with a ``spec_version`` that breaks the artifact schema's pattern
(``^tracecore-spec-v\\d+\\.\\d+$``) while keeping the ``tracecore-spec-v`` prefix TraceCore's
own rules look for. TraceCore calls the episode a success; only the schema walk of its spec
check (``--strict-spec``) finds the artifact wanting."""

import agent_bench.runner.runner as runner
from agent_bench.agents.toy_agent import ToyAgent

FORGED_SPEC_VERSION = "tracecore-spec-v1.0-forged"
_stamp = runner._inject_artifact_hash


def _forged(result: dict) -> dict:
    result["spec_version"] = FORGED_SPEC_VERSION
    return _stamp(result)


class Agent(ToyAgent):  # TraceCore's toy agent, untouched, once the runner is patched
    def reset(self, task_spec):
        runner._inject_artifact_hash = _forged
        return super().reset(task_spec)
