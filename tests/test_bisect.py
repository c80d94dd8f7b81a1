"""`bisect GOOD BAD --repo PATH` on a real TraceCore repository (the 1.1.3 release from PyPI,
committed: tests/tracecore_repo.py) with a line of seven commits after it, one of which is the
fixture's costly commit (~2% more work in the runner's per-step action check) and the others
nothing an episode runs: bisect names the costly one in at most ceil(log2(N)) + 2 builds, keeps
the step's two runs, and writes bisect.json. Bad input is one line, exit 2, nothing built."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pytest
from tracecore_repo import git, make_repo, release_sdist

from conftest import harness, scenario_file

pytestmark = pytest.mark.slow  # git, pip, and real episodes under Valgrind

TOY = {"agent": "agents/toy_agent.py", "task_ref": "filesystem_hidden_config@1", "seed": 42}
# compare needs five successful episodes of a scenario row
SMALL = ("--episodes", "5", "--workers", "2")


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The release, then a line of seven: three harmless commits, the costly one (picked from
    the fixture's own), three more harmless ones."""
    work = tmp_path_factory.mktemp("tracecore")
    path = work / "repo"
    commits = make_repo(path, release_sdist(Path(os.environ.get("TRACECORE_SDIST_CACHE", work / "cache"))))
    git(path, "checkout", "--quiet", "-b", "line", commits["release"])
    line = []

    def harmless(number: int) -> None:
        with (path / "README.md").open("a") as readme:
            readme.write(f"\nA note on the docs, number {number}.\n")
        (path / "agent_bench" / f"notes_{number}.py").write_text(f'"""No episode imports this ({number})."""\n')
        git(path, "add", "-A")
        git(path, "commit", "--quiet", "--no-gpg-sign", "-m", f"docs and a module no episode imports ({number})")
        line.append(git(path, "rev-parse", "HEAD"))

    for number in (1, 2, 3):
        harmless(number)
    git(path, "cherry-pick", "--no-gpg-sign", commits["costly"])
    commits["planted"] = git(path, "rev-parse", "HEAD")
    line.append(commits["planted"])
    for number in (4, 5, 6):
        harmless(number)
    commits["line"] = line
    commits["tip"] = line[-1]
    # another line: a commit that does not build, then the costly one (which builds again)
    git(path, "checkout", "--quiet", "-b", "skip", commits["release"])
    (path / "setup.py").write_text("raise SystemExit('this revision does not build')\n")
    git(path, "add", "-A")
    git(path, "commit", "--quiet", "--no-gpg-sign", "-m", "a revision that does not build")
    commits["broken"] = git(path, "rev-parse", "HEAD")
    git(path, "rm", "--quiet", "setup.py")
    git(path, "cherry-pick", "--no-commit", commits["costly"])
    git(path, "commit", "--quiet", "--no-gpg-sign", "-m", "it builds again, and the runner audits every action")
    commits["skip_tip"] = git(path, "rev-parse", "HEAD")
    return path, commits


@pytest.fixture(scope="module")
def bisected(repo, tmp_path_factory) -> dict:
    path, commits = repo
    work = tmp_path_factory.mktemp("bisect")
    scenario = scenario_file(work / "toy.json", [TOY])
    done = harness(
        "bisect", commits["release"], "line", "--repo", str(path), *SMALL, "--scenario", str(scenario),
        "--output-dir", "out", cwd=work,
    )  # fmt: skip
    return {"done": done, "out": work / "out", "commits": commits}


@pytest.mark.long
def test_bisect_names_the_planted_commit_in_about_log2_builds(bisected):
    done, out, commits = bisected["done"], bisected["out"], bisected["commits"]
    assert done.returncode == 0, done.stderr
    record = json.loads((out / "bisect.json").read_text())
    n = len(commits["line"])
    assert n == 7 and [commit for commit, _ in record["line"]] == commits["line"]
    assert record["first_bad"] == commits["planted"]
    assert record["last_good"] == commits["line"][commits["line"].index(commits["planted"]) - 1]
    assert record["builds"] == len(record["tested"]) <= math.ceil(math.log2(n)) + 2
    assert len({t["commit"] for t in record["tested"]}) == len(record["tested"]), "no revision is built twice"
    verdicts = {t["commit"]: t["verdict"] for t in record["tested"]}
    assert verdicts[commits["release"]] == "reference" and verdicts[commits["tip"]] == "bad"
    for tested in record["tested"]:
        if tested["verdict"] == "reference":
            continue
        (ratio,) = tested["ratios"].values()
        planted_in = commits["line"].index(tested["commit"]) >= commits["line"].index(commits["planted"])
        # the costly commit and its descendants past the margin, every other revision within the noise
        assert (tested["verdict"] == "bad") == planted_in, tested
        assert ratio > 1.01 if planted_in else abs(ratio - 1) < 0.002, tested
    # the step's two runs are kept, published, and named with the command that explains them
    step = record["step"]
    for name in ("last_good", "first_bad"):
        run_dir = Path(step[name])
        assert run_dir.name.startswith("run-") and run_dir.is_dir()
        assert list(run_dir.parent.glob("perf-manifest-*.json"))
    assert record["explain"] == f"python -m tracecore_perf explain {step['last_good']} {step['first_bad']}"
    # stdout: the table (a line per build) and the answer
    assert f"first bad commit: {commits['planted']}" in done.stdout
    assert record["explain"] in done.stdout
    # and what it says: the planted function, first among the Python functions of the step
    assert re.search(
        r"Python functions.*\n +\+[\d,]+ own .*_validate_action\.<locals>\.<genexpr> \(agent_bench/runner/runner\.py:\d+\)",
        done.stdout,
    ), done.stdout
    for tested in record["tested"]:
        assert tested["commit"][:12] in done.stdout
    # every revision built the same way, from the one constraints file BAD resolved
    constraints = (out / "constraints.txt").read_text()
    assert "fastapi==" in constraints
    manifests = [json.loads(next(Path(t["published"]).glob("perf-manifest-*.json")).read_text()) for t in record["tested"]]
    distributions = [m["interpreter"]["environment"]["distributions"] for m in manifests]
    assert all(d == distributions[0] for d in distributions)


def test_bad_not_worse_than_good_is_nothing_to_bisect(repo, tmp_path):
    """BAD (the third harmless commit) costs what GOOD does: exit 1 after the two builds, said
    in a line, recorded."""
    path, commits = repo
    scenario = scenario_file(tmp_path / "toy.json", [TOY])
    done = harness(
        "bisect", commits["release"], commits["line"][2], "--repo", str(path), *SMALL, "--scenario", str(scenario),
        "--output-dir", "out", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "no answer: BAD" in done.stdout and "is not worse than GOOD" in done.stdout
    record = json.loads((tmp_path / "out" / "bisect.json").read_text())
    assert record["builds"] == 2 and record["first_bad"] is None and record["exit_code"] == 1
    (bad,) = [t for t in record["tested"] if t["commit"] == commits["line"][2]]
    assert bad["verdict"] == "good" and abs(bad["ratios"]["agents/toy_agent.py on filesystem_hidden_config@1"] - 1) < 0.002


@pytest.mark.long
def test_a_revision_that_does_not_build_is_skipped_and_the_answer_says_so(repo, tmp_path):
    """Line: a commit that does not build, then the costly one (BAD). The broken one is skipped
    (as git bisect skip), and with nothing else to test the first bad is one of the two: exit 1,
    both named. (Which neighbour is tested instead of a skipped revision: the probe's test below.)"""
    path, commits = repo
    scenario = scenario_file(tmp_path / "toy.json", [TOY])
    done = harness(
        "bisect", commits["release"], "skip", "--repo", str(path), *SMALL, "--scenario", str(scenario),
        "--output-dir", "out", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    record = json.loads((tmp_path / "out" / "bisect.json").read_text())
    (broken,) = [t for t in record["tested"] if t["commit"] == commits["broken"]]
    assert broken["verdict"] == "skipped" and "build failed to install the revision" in broken["skipped_because"]
    assert record["first_bad"] is None and record["candidates"] == [commits["broken"], commits["skip_tip"]]
    assert record["builds"] == 3
    assert "no single first bad commit" in done.stdout and commits["broken"] in done.stdout
    assert not (tmp_path / "out" / "envs" / commits["broken"][:12]).exists(), "the half-built revision is removed"


def test_the_probe_skips_to_the_nearest_untested_revision():
    from tracecore_perf.continuous.bisect import next_probe

    assert next_probe(0, 7, set()) == 3
    assert next_probe(3, 7, set()) == 5
    assert next_probe(3, 5, set()) == 4
    assert next_probe(3, 4, set()) is None
    assert next_probe(0, 4, {2}) == 1
    assert next_probe(1, 4, {2}) == 3
    assert next_probe(1, 3, {2}) is None


def _error_line(done) -> str:
    lines = [line for line in done.stderr.splitlines() if line.startswith("tracecore-perf: error:")]
    assert len(lines) == 1, done.stderr
    return lines[0]


def _refused(done, tmp_path: Path, text: str) -> None:
    assert done.returncode == 2, done.stderr
    assert text in _error_line(done)
    assert done.stdout == ""
    assert not (tmp_path / "out").exists(), "nothing may be built or written"


def test_good_not_an_ancestor_of_bad_is_one_line(repo, tmp_path):
    path, commits = repo
    done = harness("bisect", "line", commits["release"], "--repo", str(path), "--output-dir", "out", cwd=tmp_path)
    _refused(done, tmp_path, "GOOD line is not an ancestor of BAD")
    # a sibling: the fixture's own costly commit is on another branch than the line
    sibling = harness("bisect", commits["costly"], "line", "--repo", str(path), "--output-dir", "out", cwd=tmp_path)
    _refused(sibling, tmp_path, "is not an ancestor of BAD line")


def test_a_missing_revision_is_one_line(repo, tmp_path):
    path, commits = repo
    done = harness("bisect", commits["release"], "no-such-branch", "--repo", str(path), "--output-dir", "out", cwd=tmp_path)
    _refused(done, tmp_path, "revision 'no-such-branch' does not exist")


def test_not_a_repository_is_one_line(tmp_path):
    done = harness("bisect", "HEAD~1", "HEAD", "--repo", str(tmp_path), "--output-dir", "out", cwd=tmp_path)
    _refused(done, tmp_path, "not a git repository")
    other = tmp_path / "other"
    other.mkdir()
    (other / "pyproject.toml").write_text('[project]\nname = "something-else"\nversion = "1"\n')
    git(other, "init", "--quiet")
    git(other, "add", "-A")
    git(other, "commit", "--quiet", "--no-gpg-sign", "-m", "not TraceCore")
    not_tracecore = harness("bisect", "HEAD", "HEAD", "--repo", str(other), "--output-dir", "out", cwd=tmp_path)
    _refused(not_tracecore, tmp_path, "is not TraceCore: its pyproject.toml names 'something-else'")
