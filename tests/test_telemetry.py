"""LLM telemetry volume is counted from the ``llm_trace`` of each action-trace entry, as the
TraceCore's performance guide describes, and agrees with TraceCore's own metrics pipeline over the same run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import AGENTS, harness, published, scenario_file

pytestmark = pytest.mark.slow  # every test here runs the harness: real episodes

ROWS = [
    {"agent": str(AGENTS / "llm_telemetry_agent.py"), "task_ref": "filesystem_hidden_config@1", "seed": 3},
    {"agent": "agents/toy_agent.py", "task_ref": "filesystem_hidden_config@1", "seed": 3},
]


def test_llm_telemetry_is_counted_per_episode_and_in_total(tmp_path: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("fixture", AGENTS / "llm_telemetry_agent.py")
    fixture = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixture)

    out = tmp_path / "out"
    done = harness("--scenario", str(scenario_file(tmp_path / "s.json", ROWS)), "--episodes", "4", "--workers", "2",
                   "--output-dir", str(out), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    series = published(out, "series")
    (run_dir,) = out.glob("run-*")
    for row in series:
        artifact = json.loads((run_dir / ".agent_bench" / "runs" / f"{row['run_id']}.json").read_text())
        calls = sum(len(step.get("llm_trace") or []) for step in artifact["action_trace"])
        # the performance guide's serialized size of exactly this artifact
        assert row["artifact_bytes"] == len(json.dumps(artifact, sort_keys=True).encode("utf-8"))
        if row["agent"].endswith("llm_telemetry_agent.py"):
            assert calls > 0
            assert row["llm_trace_entries"] == calls
            assert row["prompt_bytes"] == calls * len(fixture.PROMPT.encode("utf-8"))
            assert row["completion_bytes"] == calls * len(fixture.COMPLETION.encode("utf-8"))
            assert row["tokens_used"] == calls * fixture.TOKENS
        else:  # the shipped toy agent records no LLM calls
            assert calls == 0 and row["llm_trace_entries"] == row["prompt_bytes"] == row["tokens_used"] == 0

    verbosity = published(out, "summary")["telemetry_verbosity"]
    assert verbosity["llm_trace_entries_total"] == sum(row["llm_trace_entries"] for row in series) > 0
    assert verbosity["prompt_bytes_total"] == sum(row["prompt_bytes"] for row in series)
    assert verbosity["completion_bytes_total"] == sum(row["completion_bytes"] for row in series)
    assert verbosity["tokens_used_total"] == sum(row["tokens_used"] for row in series)
    assert verbosity["llm_trace_entries_avg"] == verbosity["llm_trace_entries_total"] / 4
    assert verbosity["artifact_bytes_total"] == sum(row["artifact_bytes"] for row in series)

    # TraceCore's own metrics pipeline, over the same run artifacts, counts the same volume
    # (its artifact_bytes is len(str(artifact)), a different measure from the guide's JSON size)
    metrics = published(out, "metrics")
    for key in ("llm_trace_entries_total", "prompt_bytes_total", "completion_bytes_total", "tokens_used_total"):
        assert sum(row[key] for row in metrics) == verbosity[key]
