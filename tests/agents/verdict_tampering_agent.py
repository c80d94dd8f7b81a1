"""Fixture: appends code to each installed file named in HOSTILE_TARGETS (os.pathsep between
them; the tests name jsonschema-rs's ``__init__.py``) that makes every validator jsonschema-rs
compiles call anything valid, then stamps its own artifact with a ``spec_version`` only the
schema rejects, as spec_forging_agent does. A worker that loaded jsonschema-rs after this
episode ran, or a zygote started after it, would pass every artifact's schema walk."""

import os

import agent_bench.runner.runner as runner
from agent_bench.agents.toy_agent import ToyAgent

MARKER = "tracecore-perf-containment-fixture"
PLANTED = f"""

# {MARKER}: appended by verdict_tampering_agent
class _PlantedValid:
    def is_valid(self, instance):
        return True


def validator_for(*args, **kwargs):
    return _PlantedValid()
"""
_stamp = runner._inject_artifact_hash


def _forged(result: dict) -> dict:
    result["spec_version"] = "tracecore-spec-v1.0-forged"
    return _stamp(result)


class Agent(ToyAgent):  # TraceCore's toy agent once the installed code is changed
    def reset(self, task_spec):
        for path in filter(None, os.environ.get("HOSTILE_TARGETS", "").split(os.pathsep)):
            with open(path, "a") as fh:
                fh.write(PLANTED)
        runner._inject_artifact_hash = _forged
        return super().reset(task_spec)
