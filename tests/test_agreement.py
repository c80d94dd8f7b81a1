"""A row's success agrees with its evidence: each row of a published run against its artifact in
the run, and TraceCore's metrics against the rows (``integrity.check_agreement``).

The fast tests hold the check itself to rows and artifacts written by the test. The slow ones
run the real harness: a run whose rows claim a success its artifact denies (left in
``series.jsonl`` by an earlier attempt, which ``--resume`` takes as found: what a forged worker
leaves) is published ``tainted`` (exit 4) naming the row, the file and the metrics' figures;
honest runs, with failures or without, and their resumes, stay clean.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import msgspec
import pytest
from runs import TASK, TOY, fixture_agent, real_run, row

from tracecore_perf.models import Integrity
from tracecore_perf.run.integrity import SHOWN, check_agreement
from tracecore_perf.run.rundir import RunDir

from conftest import harness, published

AGENT = "agents/toy_agent.py"


# --- the check, in-process ----------------------------------------------------------------------


def artifact(run_id: str, *, success: bool = True, failure_type: str | None = None, agent: str = AGENT,
             task_ref: str = TASK, seed: int = 1, **more) -> dict:  # fmt: skip
    """The fields of a TraceCore 1.1.3 artifact the check reads, among others it does not."""
    return {
        "task_id": task_ref.split("@")[0], "version": 1, "seed": seed, "success": success,
        "termination_reason": failure_type or "success", "failure_reason": failure_type,
        "failure_type": failure_type, "steps_used": 4, "action_trace": [{"action": {"type": "x"}}],
        "run_id": run_id, "trace_id": run_id, "agent": agent, "agent_ref": agent, "task_ref": task_ref, **more,
    }  # fmt: skip


class Run:
    """A run directory the test fills: rows in ``series.jsonl``, artifacts as a worker places them."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = RunDir(tmp_path / "run-20260101T000000Z")
        self.dir.create()
        self.rows: list = []

    def episode(self, index: int, body: dict | None, *, place: bool = True, **fields) -> str:
        """A row for episode ``index`` whose artifact is ``body`` (placed unless ``place`` is
        false), agreeing with it unless ``fields`` say otherwise; returns its run id."""
        run_id = (body or {}).get("run_id") or f"r{index:031d}"
        data = json.dumps(body, indent=2).encode() if body is not None else b""
        if body is not None and place:
            (self.dir.runs_root / f"{run_id}.json").write_bytes(data)
        values = {"run_id": run_id if body is not None else None, "seed": 1, "agent": AGENT}
        if body is not None:
            values.update(success=body["success"] is True, failure_type=body["failure_type"])
            values["artifact_sha256"] = hashlib.sha256(data).hexdigest()
            values["error"] = None if body["success"] is True else f"{body['failure_type']}: x"
        values.update(fields)
        self.rows.append(row(index, **values))
        return run_id

    def check(self, metrics: list[dict] | None = None, labels: dict[str, str] | None = None) -> Integrity:
        self.dir.series.write_bytes(b"".join(msgspec.json.encode(r) + b"\n" for r in self.rows))
        report = Integrity()
        check_agreement(self.dir, report, labels=labels or {}, metrics_rows=metrics or [])
        return report


def metrics_row(runs: int, successes: int, taxonomy: dict[str, int], *, agent: str = AGENT, task_ref: str = TASK) -> dict:
    """A row of TraceCore 1.1.3's ``compute_all_metrics`` (the fields the check compares)."""
    rate = round(successes / runs, 4) if runs else None
    return {"task_ref": task_ref, "agent": agent, "run_count": runs, "reproducibility_rate": rate,
            "failure_taxonomy": taxonomy, "steps_p50": 4}  # fmt: skip


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return Run(tmp_path)


def test_rows_that_agree_with_their_artifacts_and_the_metrics_are_clean(run):
    run.episode(0, artifact("a" * 32))
    run.episode(1, artifact("b" * 32, success=False, failure_type="invalid_action"))
    # failed by the harness although its artifact says success (--strict-spec, a bad exit)
    run.episode(2, artifact("c" * 32), success=False, error="strict-spec: x")
    run.episode(3, None, success=False, error="crashed: x")  # failed before producing an artifact
    run.episode(4, None, success=False, error="timeout: x", failure_type="timeout", timed_out=True)
    # a task ref without its version: TraceCore records the version it ran
    run.episode(5, artifact("d" * 32), task_ref=TASK.split("@")[0])
    metrics = [metrics_row(4, 3, {"success": 3, "invalid_action": 1})]
    assert run.check(metrics) == Integrity()


def test_a_successful_row_whose_artifact_says_failure_is_named(run):
    run_id = run.episode(0, artifact("a" * 32, success=False, failure_type="invalid_action"), success=True, error=None,
                         failure_type=None)  # fmt: skip
    run.episode(1, artifact("b" * 32))
    report = run.check()
    assert not report.clean and report.contradicted_rows == 1, report
    assert report.problems == [
        f"row of episode 1 ({run_id}.json): the row says success, its artifact says success: false; "
        "the row's failure_type is null, its artifact's invalid_action"
    ]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing", "the row says success, its artifact is not in the run"),
        ("unreadable", "its artifact cannot be read (not JSON TraceCore can read)"),
        ("not an object", "its artifact cannot be read (not a JSON object)"),
        ("no sha256", "the row carries no SHA-256 of its artifact"),
        ("another run's", "the artifact is run " + "z" * 32 + "'s"),
        ("agent", f"the row's agent is {AGENT}, its artifact's someone_else.py"),
        ("task", f"the row's task is {TASK}, its artifact's other_task@1"),
        ("version", f"the row's task is {TASK}, its artifact's filesystem_hidden_config@2"),
        ("seed", "the row's seed is 1, its artifact's 7"),
        ("no artifact", "the row says success but names no artifact"),
        ("bad run id", "the row names no valid run id (../../elsewhere)"),
        ("failure type", "the row's failure_type is budget_exhausted, its artifact's invalid_action"),
    ],
)
def test_each_way_a_row_can_disagree_with_its_artifact_is_named(run, case: str, expected: str):
    body = artifact("a" * 32)
    overrides: dict = {}
    if case == "missing":
        run.episode(0, body, place=False)
    elif case in ("unreadable", "not an object"):
        run_id = run.episode(0, body)
        (run.dir.runs_root / f"{run_id}.json").write_bytes(b"{not json" if case == "unreadable" else b"[1, 2]")
    else:
        if case == "no sha256":
            overrides["artifact_sha256"] = None
        elif case == "another run's":
            body["run_id"] = "z" * 32
            overrides["run_id"] = "a" * 32
            (run.dir.runs_root / f"{'a' * 32}.json").write_text(json.dumps(body))
        elif case == "agent":
            body["agent"] = "someone_else.py"
        elif case == "task":
            body["task_ref"] = "other_task@1"
        elif case == "version":
            body["task_ref"] = "filesystem_hidden_config@2"
        elif case == "seed":
            body["seed"] = 7
        elif case == "no artifact":
            overrides.update(run_id=None, artifact_sha256=None)
        elif case == "bad run id":
            overrides["run_id"] = "../../elsewhere"
        elif case == "failure type":
            body.update(success=False, failure_type="invalid_action")
            overrides.update(success=False, failure_type="budget_exhausted")
        run.episode(0, body, **overrides)
    report = run.check()
    assert report.contradicted_rows == 1 and len(report.problems) == 1, report
    assert report.problems[0].startswith("row of episode 1") and expected in report.problems[0], report.problems


@pytest.mark.parametrize(
    ("plant", "why"),
    [("fifo", "not a regular file"), ("link", "Too many levels of symbolic links"), ("sparse", "larger than 64 MiB")],
)
def test_what_stands_at_an_artifacts_name_is_never_followed_waited_on_or_read_whole(run, tmp_path, plant, why):
    run_id = run.episode(0, artifact("a" * 32))
    path = run.dir.runs_root / f"{run_id}.json"
    path.unlink()
    if plant == "fifo":
        os.mkfifo(path)
    elif plant == "link":
        elsewhere = tmp_path / "elsewhere.json"
        elsewhere.write_text(json.dumps(artifact("a" * 32)))
        path.symlink_to(elsewhere)
    else:
        with path.open("wb") as fh:
            fh.truncate(65 * 1024 * 1024)  # a hole: nothing to read, and nothing read
    report = run.check()
    assert report.contradicted_rows == 1 and report.problems == [
        f"row of episode 1 ({run_id}.json): its artifact cannot be read ({why})"
    ], report.problems


def test_two_rows_naming_one_artifact_are_named(run):
    run_id = run.episode(0, artifact("a" * 32))
    run.rows.append(row(1, run_id=run_id, artifact_sha256=run.rows[0].artifact_sha256, agent=AGENT))
    report = run.check([metrics_row(1, 1, {"success": 1})])
    assert report.contradicted_rows == 1 and "the row names the artifact of episode 1's row too" in report.problems[0]
    # and TraceCore's metrics count the one file once: the rows' two runs disagree with them
    assert report.metrics_disagreements == 1 and "the metrics count 1 successful runs of 1, the rows 2 of 2" in report.problems[1]


def test_an_artifact_holding_nan_is_read_as_tracecore_reads_it(run):
    run_id = run.episode(0, artifact("a" * 32))
    path = run.dir.runs_root / f"{run_id}.json"
    path.write_text(path.read_text().replace('"steps_used": 4', '"steps_used": NaN'))
    run.rows[0].artifact_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    assert run.check() == Integrity()


def test_the_first_readable_row_of_an_episode_is_the_one_held(run):
    run.episode(0, artifact("a" * 32))
    run.rows.append(row(0, run_id="a" * 32, success=False, error="forged", artifact_sha256="0" * 64))  # not published
    assert run.check() == Integrity()


def test_a_packaged_agent_is_held_to_the_name_its_artifacts_record(run):
    run.episode(0, artifact("a" * 32, agent="toy"), agent="/site-packages/agent_bench/agents/toy_agent.py")
    assert run.check(labels={"/site-packages/agent_bench/agents/toy_agent.py": "toy"}) == Integrity()


def test_many_disagreeing_rows_are_counted_past_the_ones_named(run):
    for index in range(SHOWN + 5):
        run.episode(index, artifact(f"{index:032d}", success=False, failure_type="invalid_action"), success=True,
                    failure_type=None)  # fmt: skip
    report = run.check()
    assert report.contradicted_rows == SHOWN + 5 and len(report.problems) == SHOWN + 1, report.problems
    assert report.problems[-1] == "5 more rows disagree with their artifacts"


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        ([metrics_row(2, 2, {"success": 2})], "the metrics count 2 successful runs of 2, the rows 1 of 2"),
        ([metrics_row(2, 0, {"invalid_action": 2})], "the metrics count 0 successful runs of 2, the rows 1 of 2"),
        ([metrics_row(3, 1, {"success": 1, "invalid_action": 2})], "the metrics count 1 successful runs of 3, the rows 1 of 2"),
        ([metrics_row(2, 1, {"success": 2})],
         "failure types: the metrics {'success': 2}, the artifacts {'success': 1, 'invalid_action': 1}"),
        ([], None),  # no metrics (a TraceCore without the pipeline, a run stopped early): nothing to compare
        ([metrics_row(2, 1, {"success": 1, "invalid_action": 1}), metrics_row(1, 1, {"success": 1}, agent="ghost.py")],
         "for ghost.py on filesystem_hidden_config@1: the metrics count 1 successful runs of 1, the rows 0 of 0"),
        ([metrics_row(1, 1, {"success": 1}, agent="ghost.py")],
         (f"for {AGENT} on filesystem_hidden_config@1: the metrics count 0 successful runs of 0, the rows 1 of 2",
          "for ghost.py on filesystem_hidden_config@1: the metrics count 1 successful runs of 1, the rows 0 of 0")),
    ],
)  # fmt: skip
def test_metrics_that_disagree_with_the_rows_are_named_with_both_figures(run, metrics, expected):
    run.episode(0, artifact("a" * 32))
    run.episode(1, artifact("b" * 32, success=False, failure_type="invalid_action"))
    report = run.check(metrics)
    if expected is None:
        assert report == Integrity()
        return
    expected = (expected,) if isinstance(expected, str) else expected
    assert report.metrics_disagreements == len(expected) and report.contradicted_rows == 0, report
    assert len(report.problems) == len(expected), report.problems
    for line, part in zip(report.problems, expected, strict=True):
        assert line.startswith("TraceCore's metrics disagree with the rows for ") and part in line, line


def test_a_figure_the_metrics_do_not_hold_is_not_compared(run):
    """A TraceCore whose metrics rows lack a figure (or hold another type) is not held to it."""
    run.episode(0, artifact("a" * 32))
    row_ = metrics_row(1, 1, {"success": 1})
    for name in ("run_count", "reproducibility_rate", "failure_taxonomy"):
        row_[name] = None
    assert run.check([row_]) == Integrity()


def test_a_metrics_rate_rounded_to_four_places_agrees(run):
    for index in range(3):
        run.episode(index, artifact(f"{index:032d}", success=index == 0, failure_type=None if index == 0 else "x"))
    assert run.check([metrics_row(3, 1, {"success": 1, "x": 2})]) == Integrity()  # 0.3333


def test_a_row_check_that_cannot_complete_is_itself_a_finding(run, monkeypatch):
    run.episode(0, artifact("a" * 32))

    def fail():
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(RunDir, "iter_rows", lambda self: fail())
    report = run.check()
    assert not report.clean and report.problems == ["the rows could not be held to their artifacts (Permission denied)"]


# --- real runs ----------------------------------------------------------------------------------

WRONG = fixture_agent("wrong_answer_agent")


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "series.jsonl").read_text().splitlines()]


def _write_rows(run_dir: Path, rows: list[dict]) -> None:
    (run_dir / "series.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _resume(work: Path, run_dir: Path):
    return harness("--resume", str(run_dir), "--no-progress", cwd=work)


@pytest.mark.slow
def test_a_resumed_run_whose_rows_claim_successes_their_artifacts_deny_is_published_tainted(tmp_path: Path):
    """What a forged worker leaves, on disk: rows of the wrong-answer agent's failed episodes
    claiming success, one with the SHA-256 of its (unchanged) artifact, one with none beside an
    artifact rewritten to match; the run interrupted before it published. ``--resume`` takes the
    rows as found, runs the missing episode and publishes: tainted, naming both rows, their
    files and TraceCore's metrics' figures against the rows'."""
    run_dir = real_run(tmp_path, "forged", [WRONG, TOY], 6)
    rows = _rows(run_dir)
    by_index = {r["episode_index"]: r for r in rows}
    assert [by_index[i]["success"] for i in range(6)] == [False, True] * 3, rows
    first, second = by_index[0], by_index[2]
    first.update(success=True, error=None, failure_type=None)  # its artifact's SHA-256 kept
    path = run_dir / ".agent_bench" / "runs" / f"{second['run_id']}.json"
    body = json.loads(path.read_text())
    body.update(success=True, failure_type=None, failure_reason=None, termination_reason="success")
    path.write_text(json.dumps(body, indent=2))
    second.update(success=True, error=None, failure_type=None, artifact_sha256=None)
    _write_rows(run_dir, [r for r in rows if r["episode_index"] != 5])  # the last episode never ran
    done = _resume(tmp_path, run_dir)
    assert done.returncode == 4, done.stderr[-2000:]
    out = run_dir.parent
    summary, manifest = published(out, "summary"), published(out, "manifest")
    assert summary["status"] == manifest["status"] == "tainted"
    integrity = summary["integrity"]
    assert not integrity["clean"] and integrity["contradicted_rows"] == 2 and integrity["metrics_disagreements"] == 1, integrity
    problems = integrity["problems"]
    assert (
        f"row of episode 1 ({first['run_id']}.json): the row says success, its artifact says success: false; "
        "the row's failure_type is null, its artifact's invalid_action"
    ) in problems, problems
    assert any(
        p.startswith(f"row of episode 3 ({second['run_id']}.json): the row carries no SHA-256 of its artifact") for p in problems
    ), problems
    assert (
        f"TraceCore's metrics disagree with the rows for {WRONG} on {TASK}: the metrics count 1 successful runs of 3, "
        "the rows 2 of 3"
    ) in " ".join(problems), problems
    metrics = {(m["agent"], m["task_ref"]): m for m in published(out, "metrics")}
    assert metrics[(WRONG, TASK)]["run_count"] == 3 and metrics[(WRONG, TASK)]["failure_taxonomy"] == {
        "invalid_action": 2,
        "success": 1,
    }
    assert len(published(out, "series")) == 6 and manifest["attempts"][-1]["episodes_run"] == 1


@pytest.mark.slow
def test_a_resume_of_rows_left_as_they_were_written_publishes_clean(tmp_path: Path):
    """The same resume with nothing forged: earlier attempts' rows, and their artifacts in
    TraceCore's metrics, agree with the rows the resume adds."""
    run_dir = real_run(tmp_path, "honest", [WRONG, TOY], 6)
    _write_rows(run_dir, [r for r in _rows(run_dir) if r["episode_index"] != 5])
    done = _resume(tmp_path, run_dir)
    assert done.returncode == 1, done.stderr[-2000:]  # the wrong answers' failures, nothing else
    summary = published(run_dir.parent, "summary")
    assert summary["status"] == "resumed" and summary["integrity"]["clean"], summary["integrity"]
    assert (summary["success_count"], summary["failure_count"]) == (3, 3)


@pytest.mark.slow
def test_failures_and_successes_that_are_what_their_artifacts_say_publish_clean(tmp_path: Path):
    """The wrong-answer agent beside the toy one (a task ref without its version among them):
    failures, no false taint, TraceCore's metrics published and agreeing."""
    run_dir = real_run(tmp_path, "mixed", [WRONG, TOY], 8, task="filesystem_hidden_config")
    out = run_dir.parent
    summary = published(out, "summary")
    assert summary["status"] == "complete" and summary["integrity"]["clean"], summary["integrity"]
    assert (summary["success_count"], summary["failure_count"]) == (4, 4)
    rates = {m["agent"]: (m["run_count"], m["reproducibility_rate"]) for m in published(out, "metrics")}
    assert rates == {WRONG: (4, 0.0), TOY: (4, 1.0)}, rates


@pytest.mark.slow
def test_a_toy_run_publishes_clean(tmp_path: Path):
    run_dir = real_run(tmp_path, "toy", [TOY], 6, "--strict-spec")
    summary = published(run_dir.parent, "summary")
    assert summary["status"] == "complete" and summary["integrity"]["clean"], summary["integrity"]
    assert summary["success_count"] == 6
