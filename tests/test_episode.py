"""The worker's check of an episode's report (``run/episode/episode.py``'s ``check_report``):
what it forwards decodes as the harness's ``Done``, the artifact is placed in the run by the
worker (``artifact.py``), never through a link nor over another, and a write the host refuses
is a host fault with nothing half-written left. In-process, no episode."""

from __future__ import annotations

import errno
import hashlib
import json
import os

import pytest

from tracecore_perf.run import protocol
from tracecore_perf.run.episode import artifact as artifact_side
from tracecore_perf.run.episode import episode
from tracecore_perf.run.episode.state import side


def _done(report: bytes, runs_dir: str | None) -> protocol.Done:
    message = {
        "event": "done",
        "returncode": 0,
        "killed": False,
        "cpu_user_s": 0.01,
        "cpu_sys_s": 0.0,
        "max_rss_bytes": 1,
        "output_bytes": 0,
        "leftover_processes": 0,
        **episode.check_report(bytearray(report), {"runs_dir": runs_dir}),
    }
    event = protocol.worker_events.decode(json.dumps(message).encode())
    assert isinstance(event, protocol.Done)
    return event


def test_a_finished_report_becomes_a_done_with_the_artifact_placed_in_the_run(tmp_path):
    artifact = {"run_id": "r1", "success": True, "action_trace": [{"llm_trace": [{"request": {"prompt": "ab"}}]}]}
    report = {"completed": True, "episode_s": 0.5, "run_id": "r1", "artifact": artifact}
    runs = tmp_path / ".agent_bench" / "runs"  # as in a run directory (made by the worker if missing)
    done = _done(json.dumps(report).encode(), str(runs))
    assert done.artifact is not None and done.artifact.success and done.artifact.llm_trace_entries == 1
    assert done.artifact.artifact_bytes == len(json.dumps(artifact, sort_keys=True).encode())
    assert "artifact" not in done.result  # the harness gets the facts, not the artifact
    placed = (runs / "r1.json").read_bytes()
    assert done.artifact.sha256 == hashlib.sha256(placed).hexdigest()
    assert placed == json.dumps(artifact, ensure_ascii=False, indent=2).encode()  # persist_run's format
    assert done.artifact.file_bytes == len(placed)


def test_the_spec_check_and_the_agents_name_are_the_workers_never_the_episodes(tmp_path):
    # An episode that claims its artifact passed the spec check: the worker checks it itself.
    artifact = {"run_id": "r2", "success": True, "agent": "/abs/agents/toy_agent.py", "agent_ref": "/abs/agents/toy_agent.py"}
    report = {"completed": True, "episode_s": 0.5, "run_id": "r2", "artifact": artifact, "spec_errors": []}
    runs = tmp_path / ".agent_bench" / "runs"
    job = {
        "runs_dir": str(runs),
        "strict_spec": True,
        "agent": "/abs/agents/toy_agent.py",
        "agent_label": "agents/toy_agent.py",
    }
    message = episode.check_report(bytearray(json.dumps(report).encode()), job)
    assert message["result"]["spec_errors"], "TraceCore's spec check finds a bare artifact wanting"
    placed = json.loads((runs / "r2.json").read_text())
    assert placed["agent"] == placed["agent_ref"] == "agents/toy_agent.py"  # recorded under the name given
    # without --strict-spec there is no spec verdict at all, whatever the episode says
    report["run_id"] = artifact["run_id"] = "r3"
    message = episode.check_report(bytearray(json.dumps(report).encode()), dict(job, strict_spec=False))
    assert "spec_errors" not in message["result"] and message["artifact"]["success"]


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        (b"", None),
        (b"[1, 2]", "bad result: a JSON list"),
        (b"{not json", "bad result: not one JSON value"),
        (b'{"a":' + b"[" * 30000 + b"]" * 30000 + b"}", "bad result: not one JSON value"),
    ],
)
def test_unusable_reports_are_the_episodes_bad_result(report, expected):
    done = _done(report, None)
    assert done.result is None
    assert (done.result_error or "").startswith(expected) if expected else done.result_error is None


def test_a_claim_without_its_artifact_is_unverified_and_places_nothing(tmp_path):
    report = {"completed": True, "episode_s": 0.1, "run_id": "forged"}
    done = _done(json.dumps(report).encode(), str(tmp_path))
    assert done.artifact is None and "no TraceCore artifact" in done.artifact_error
    assert list(tmp_path.iterdir()) == []


def test_an_artifact_already_in_the_run_is_never_overwritten(tmp_path):
    runs = tmp_path / ".agent_bench" / "runs"
    runs.mkdir(parents=True)
    (runs / "r1.json").write_text("theirs")
    report = {"completed": True, "episode_s": 0.1, "run_id": "r1", "artifact": {"run_id": "r1", "success": True}}
    done = _done(json.dumps(report).encode(), str(runs))
    assert done.artifact is None and "already holds" in done.artifact_error
    assert (runs / "r1.json").read_text() == "theirs"


@pytest.mark.parametrize("replaced", [".agent_bench", "runs"])
def test_an_artifact_is_never_placed_through_a_link_in_a_folders_place(tmp_path, replaced):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run_dir = tmp_path / "run-x"
    (run_dir / ".agent_bench").mkdir(parents=True)
    link = run_dir / ".agent_bench" if replaced == ".agent_bench" else run_dir / ".agent_bench" / "runs"
    if replaced == ".agent_bench":
        (run_dir / ".agent_bench").rmdir()
    link.symlink_to(elsewhere, target_is_directory=True)
    report = {"completed": True, "episode_s": 0.1, "run_id": "r1", "artifact": {"run_id": "r1", "success": True}}
    done = _done(json.dumps(report).encode(), str(run_dir / ".agent_bench" / "runs"))
    assert done.artifact is None and "a link or a file stands in a folder's place" in done.artifact_error
    assert list(elsewhere.rglob("*")) == []


def test_an_artifact_with_no_run_directory_to_go_to_is_a_host_fault_not_the_episodes(tmp_path):
    # the output folder removed or renamed mid-run: the episode did nothing wrong
    report = {"completed": True, "episode_s": 0.1, "run_id": "r1", "artifact": {"run_id": "r1", "success": True}}
    done = _done(json.dumps(report).encode(), str(tmp_path / "gone" / "run-x" / ".agent_bench" / "runs"))
    assert done.artifact is None and done.artifact_error is None
    assert done.host_fault == "cannot place the artifact in the run: No such file or directory"
    assert not (tmp_path / "gone").exists()  # the run directory is never made again by a worker


@pytest.mark.parametrize(
    ("code", "host"),
    [(errno.ENOSPC, True), (errno.EDQUOT, True), (errno.EACCES, True), (errno.EPERM, True), (errno.EROFS, True),
     (errno.EIO, False)],
)  # fmt: skip
def test_a_write_the_host_refuses_leaves_no_half_artifact_and_is_a_host_fault(tmp_path, monkeypatch, code, host):
    def half_then_refused(fd: int, data: bytes) -> None:
        os.write(fd, data[: len(data) // 2])
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(artifact_side, "write_all", half_then_refused)
    runs = tmp_path / ".agent_bench" / "runs"
    runs.mkdir(parents=True)
    report = {"completed": True, "episode_s": 0.1, "run_id": "r1", "artifact": {"run_id": "r1", "success": True}}
    done = _done(json.dumps(report).encode(), str(runs))
    why = f"cannot place the artifact in the run: {os.strerror(code)}"
    assert done.artifact is None
    assert (done.host_fault, done.artifact_error) == ((why, None) if host else (None, why))
    assert list(runs.iterdir()) == []  # taken back: nothing for the evidence check to find
    assert side.placed is None
