"""The workflow a TraceCore repository keeps, run step by step on this machine
(``tests/workflow_driver.py``: its ``run:`` steps with bash as Actions runs them, the
``actions/*`` steps by local stand-ins) against a TraceCore repository made from a real
release (``tests/tracecore_repo.py``): a pull request that changes no runtime code is "no
change" and the job passes; one that makes every episode ~2% dearer fails at the gate, and
both comments say so; a push to the default branch leaves its run on the perf-history branch.
The `scope` job's decisions (runtime paths, the label, push, accept) are driven the same way.
The tool is installed by the workflow's own step from a wheel of this checkout, into a virtual
environment of its own."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from tracecore_repo import git, make_repo, release_sdist
from workflow_driver import Driver, base_python

from tracecore_perf.export.markdown import MARKER

from conftest import REPO

pytestmark = pytest.mark.slow

WORKFLOW = REPO / "deliverables" / "ci" / "tracecore-perf.yml"
ROW = {"agent": "agents/toy_agent.py", "task_ref": "filesystem_hidden_config@1", "seed": 42}


@pytest.fixture(scope="session")
def tracecore_sdist(tmp_path_factory) -> Path:
    return release_sdist(tmp_path_factory.mktemp("tracecore-sdist-cache"))


@pytest.fixture(scope="session")
def tool_wheel(tool_dist) -> Path:
    return tool_dist["wheel"]


@pytest.fixture(scope="module")
def origin(tmp_path_factory, tracecore_sdist) -> tuple[Path, dict[str, str]]:
    """TraceCore's repository as GitHub holds it (a bare repository the checkout clones), with
    the fixture's commits and one more on a branch of its own that changes the docs only."""
    root = tmp_path_factory.mktemp("tracecore-origin")
    work = root / "work"
    commits = make_repo(work, tracecore_sdist)
    git(work, "checkout", "--quiet", "-b", "docs", commits["release"])
    with (work / "README.md").open("a") as readme:
        readme.write("\nA note on the leaderboard's docs.\n")
    git(work, "commit", "--quiet", "--no-gpg-sign", "-am", "docs only")
    commits["docs"] = git(work, "rev-parse", "HEAD")
    git(work, "checkout", "--quiet", "main")
    subprocess.run(["git", "clone", "--quiet", "--bare", str(work), str(root / "origin.git")], check=True)
    return root / "origin.git", commits


def _pull_request(number: int, base: str, head: str, action: str = "synchronize", labels=(), added=None) -> dict:
    event = {
        "action": action,
        "number": number,
        "pull_request": {
            "number": number,
            "base": {"sha": base, "ref": "main"},
            "head": {"sha": head, "ref": "feature", "repo": {"full_name": "contributor/tracecore"}},
            "labels": [{"name": name} for name in labels],
        },
        "repository": {"default_branch": "main", "full_name": "owner/tracecore"},
    }
    if added:
        event["label"] = {"name": added}
    return event


def _driver(tmp_path: Path, origin: Path, event_name: str, event: dict, sha: str, ref: str, **kwargs) -> Driver:
    return Driver(
        yaml.safe_load(WORKFLOW.read_text()),
        event_name=event_name,
        event=event,
        sha=sha,
        ref=ref,
        origin=origin,
        root=tmp_path / "runner",
        python=base_python(),
        # pip on the runner, held to CI's versions (and its cache): the tool's and both sides' installs
        env={"PIP_CONSTRAINT": str(REPO / ".ci" / "constraints.txt"), "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        **kwargs,
    )


def _small(tmp_path: Path, wheel: Path) -> dict:
    """The workflow's settings as a maintainer who wants a small gate would edit them: the tool
    from a wheel, one scenario row, five episodes a side (compare needs five successful ones a
    row), one ABBA round."""
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps([ROW]))
    return {
        "TRACECORE_PERF_SPEC": str(wheel),
        "PERF_EPISODES": "5",
        "PERF_WORKERS": "2",
        "PERF_ROUNDS": "1",
        "PERF_SCENARIO": str(scenario),
    }


def _explain(jobs) -> str:
    return "\n".join(f"--- {job.name}/{step.name}: {step.outcome} ({step.exit_code}, {step.seconds} s)\n{step.output[-3000:]}"
                     for job in jobs.values() for step in job.steps)  # fmt: skip


# --- the gate on a pull request ----------------------------------------------------------------


def _run_pull_request(tmp_path, origin, wheel, base: str, head: str):
    repo, _ = origin
    driver = _driver(
        tmp_path, repo, "pull_request", _pull_request(7, base, head), head, "refs/pull/7/merge", settings=_small(tmp_path, wheel)
    )
    return driver, driver.run()


def _comment(driver: Driver) -> tuple[str, str]:
    folder = driver.artifacts / "tracecore-perf-comment"
    return (folder / "pr-number").read_text().strip(), (folder / "comment.md").read_text()


@pytest.mark.long
@pytest.mark.xdist_group("workflow: no change")  # each long workflow on a worker of its own
def test_a_pull_request_that_changes_no_runtime_code_is_no_change(tmp_path, origin, tool_wheel, no_leftovers):
    _, commits = origin
    driver, jobs = _run_pull_request(tmp_path, origin, tool_wheel, commits["release"], commits["harmless"])
    perf = jobs["perf"]
    assert jobs["scope"].outputs["measure"] == "true", _explain(jobs)
    gate = perf.step("gate")
    assert gate.exit_code == 0 and gate.outcome == "success", _explain(jobs)
    assert perf.result == "success", _explain(jobs)
    assert jobs["keep-history"].result == "skipped"  # a pull request's run is never kept

    # the step summary: each table once (the gate's, the slice's check, the history's), no regression
    summary = perf.summary
    assert summary.count("### tracecore-perf compare") == 1
    assert summary.count("### tracecore-perf check") == 1 and summary.count("### tracecore-perf history check") == 1
    assert "(instructions): no change" in summary and "REGRESSION" not in summary
    assert "| ✅ | agents/toy_agent.py on filesystem_hidden_config@1 | no change |" in summary
    # the tool from the wheel, in a virtual environment of its own
    assert "tracecore-perf 0.2.0" in perf.step("Install tracecore-perf into a virtual environment of its own").output

    number, comment = _comment(driver)
    assert number == "7"
    assert comment.startswith(MARKER) and comment.count("### tracecore-perf compare") == 1
    assert "| ✅ | agents/toy_agent.py on filesystem_hidden_config@1 | no change |" in comment
    assert "### tracecore-perf history check" in comment and "REGRESSION" not in comment
    assert commits["release"] in comment and commits["harmless"] in comment

    # the slice ran on the head's own environment, which continuous built
    (manifest,) = (driver.root / "perf" / "temp" / "tracecore-perf-out" / "slice").glob("perf-manifest-*.json")
    assert json.loads(manifest.read_text())["interpreter"]["executable"].endswith("/tracecore-perf-out/envs/head/bin/python")


@pytest.mark.long
@pytest.mark.xdist_group("workflow: regression")
def test_a_pull_request_that_costs_two_percent_fails_at_the_gate(tmp_path, origin, tool_wheel, no_leftovers):
    _, commits = origin
    driver, jobs = _run_pull_request(tmp_path, origin, tool_wheel, commits["harmless"], commits["costly"])
    perf = jobs["perf"]
    gate = perf.step("gate")
    assert gate.exit_code == 1 and gate.outcome == "failure", _explain(jobs)
    assert perf.result == "failure"
    assert "::error title=tracecore-perf compare" in gate.output
    # after the gate, everything still runs: the slice, the history, the comment
    assert [perf.step(s).outcome for s in ("slice", "history")] == ["success", "success"], _explain(jobs)

    summary = perf.summary
    assert summary.count("### tracecore-perf compare") == 1 and "(instructions): **1 REGRESSION**" in summary
    assert "| ❌ | agents/toy_agent.py on filesystem_hidden_config@1 | REGRESSION | x1.02" in summary

    number, comment = _comment(driver)
    assert number == "7" and comment.startswith(MARKER)
    assert "| ❌ | agents/toy_agent.py on filesystem_hidden_config@1 | REGRESSION | x1.02" in comment
    assert commits["harmless"] in comment and commits["costly"] in comment
    # and where it went: the planted function, named first under the row, folded
    assert re.search(
        r"<details><summary>agents/toy\\?_agent.py on filesystem\\?_hidden\\?_config@1, where: "
        r"\\?_validate\\?_action\.<locals>\.<genexpr> \(agent\\?_bench/runner/runner\.py:\d+\)",
        comment.replace("&lt;", "<").replace("&gt;", ">"),
    ), comment
    explain = perf.step("explain")
    assert explain.outcome == "success" and "flame-toy_agent.py-filesystem_hidden_config@1-" in explain.output, explain.output


# --- what the scope job decides -------------------------------------------------------------------


def _scope(tmp_path, origin, event_name, event, sha, ref, **kwargs):
    repo, _ = origin
    jobs = _driver(tmp_path, repo, event_name, event, sha, ref, **kwargs).run(only=["scope"])
    return jobs["scope"]


@pytest.mark.parametrize(
    ("head", "action", "labels", "added", "measured", "why"),
    [
        ("harmless", "opened", (), None, "true", "changes a runtime path"),
        ("docs", "opened", (), None, "false", "changes no runtime path and is not labelled 'perf'"),
        ("docs", "labeled", ("perf",), "perf", "true", "labelled 'perf'"),
        ("docs", "synchronize", ("perf", "docs"), None, "true", "labelled 'perf'"),
        ("harmless", "labeled", ("documentation",), "documentation", "false", "label 'documentation' added"),
    ],
)
def test_a_pull_request_is_measured_when_it_changes_a_runtime_path_or_is_labelled(
    tmp_path, origin, head, action, labels, added, measured, why
):
    _, commits = origin
    event = _pull_request(3, commits["release"], commits[head], action, labels, added)
    scope = _scope(tmp_path, origin, "pull_request", event, commits[head], "refs/pull/3/merge")
    assert scope.result == "success", scope.steps[-1].output
    assert scope.outputs["measure"] == measured and scope.outputs["keep"] == "false"
    assert why in scope.summary
    if measured == "true":
        assert scope.outputs["base"] == commits["release"] and scope.outputs["head"] == commits[head]


def test_a_push_to_the_default_branch_is_measured_against_the_commit_before_and_kept(tmp_path, origin):
    _, commits = origin
    event = {"before": commits["harmless"], "repository": {"default_branch": "main"}}
    scope = _scope(tmp_path, origin, "push", event, commits["costly"], "refs/heads/main")
    assert (scope.outputs["measure"], scope.outputs["keep"]) == ("true", "true")
    assert (scope.outputs["base"], scope.outputs["head"]) == (commits["harmless"], commits["costly"])
    # a push that changes the docs only: no history point
    docs = {"before": commits["release"], "repository": {"default_branch": "main"}}
    scope = _scope(tmp_path / "docs", origin, "push", docs, commits["docs"], "refs/heads/main")
    assert (scope.outputs["measure"], scope.outputs["keep"]) == ("false", "false")


def test_accepting_a_slowdown_by_hand_names_a_commit_of_the_default_branch(tmp_path, origin):
    _, commits = origin
    event = {"inputs": {}, "repository": {"default_branch": "main"}}
    short = commits["costly"][:10]
    scope = _scope(tmp_path, origin, "workflow_dispatch", event, commits["costly"], "refs/heads/main",
                   inputs={"accept": short, "reason": "the audit is worth it", "base": ""})  # fmt: skip
    assert (scope.outputs["measure"], scope.outputs["keep"], scope.outputs["accept"]) == ("false", "true", commits["costly"])
    for bad in ("$(touch pwned)", "main", "0" * 40):
        refused = _scope(tmp_path / f"bad-{len(bad)}", origin, "workflow_dispatch", event, commits["costly"],
                         "refs/heads/main", inputs={"accept": bad})  # fmt: skip
        assert refused.result == "failure" and "is not a commit of this repository" in refused.steps[-1].output
        assert not any(p.name == "pwned" for p in (tmp_path / f"bad-{len(bad)}").rglob("pwned"))
    # on another branch, nothing is accepted: the history is the default branch's
    other = _scope(tmp_path / "other", origin, "workflow_dispatch", event, commits["costly"], "refs/heads/feature",
                   inputs={"accept": short})  # fmt: skip
    assert other.result == "failure" and "default branch only" in other.steps[-1].output
    # run by hand without accept: measured against the parent, kept on the default branch
    by_hand = _scope(tmp_path / "hand", origin, "workflow_dispatch", event, commits["costly"], "refs/heads/main", inputs={})
    assert (by_hand.outputs["measure"], by_hand.outputs["base"]) == ("true", commits["harmless"])


# --- a push to the default branch: its run kept on the perf-history branch -------------------------


@pytest.mark.long
@pytest.mark.xdist_group("workflow: push")
def test_a_push_to_the_default_branch_keeps_its_run_on_the_history_branch(tmp_path, origin, tool_wheel, no_leftovers):
    from tracecore_perf.history.store import open_store

    repo, commits = origin
    event = {"before": commits["release"], "repository": {"default_branch": "main", "full_name": "owner/tracecore"}}
    driver = _driver(tmp_path, repo, "push", event, commits["harmless"], "refs/heads/main", settings=_small(tmp_path, tool_wheel))
    jobs = driver.run()
    assert [jobs[j].result for j in ("scope", "perf", "keep-history")] == ["success"] * 3, _explain(jobs)
    assert "tracecore-perf-comment" not in {p.name for p in driver.artifacts.iterdir()}  # a push has no comment
    assert "no perf-history branch yet: the history starts with this run" in jobs["perf"].step("history").output

    # the branch holds the history with the pushed commit's run, and a README saying what it is
    files = git(repo, "ls-tree", "--name-only", "perf-history").split()
    assert files == ["README.md", "history.sqlite"]
    assert git(repo, "log", "-1", "--format=%s", "perf-history") == f"tracecore-perf history: {commits['harmless']}"
    db = tmp_path / "kept.sqlite"
    db.write_bytes(subprocess.run(["git", "-C", str(repo), "show", "perf-history:history.sqlite"], capture_output=True,
                                  check=True).stdout)  # fmt: skip
    with open_store(db, write=False) as store:
        assert [run.label for run in store.runs()] == [commits["harmless"]]
