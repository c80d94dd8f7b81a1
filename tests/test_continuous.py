"""`continuous BASE HEAD --repo PATH` on a real TraceCore repository (the 1.1.3 release from
PyPI, committed, with commits a pull request could make: tests/tracecore_repo.py): each side
built the same way from its own revision, running its own agents, recorded; bad input one line
and exit 2, with nothing published and no environment left. The gate's verdicts on a harmless
and a costly pull request, through the workflow's own steps, are in test_workflow.py."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from tracecore_repo import git, make_repo, release_sdist

from conftest import AGENTS, harness, scenario_file

pytestmark = pytest.mark.slow  # git, pip, and real episodes under Valgrind

TOY = {"agent": "agents/toy_agent.py", "task_ref": "filesystem_hidden_config@1", "seed": 42}
# compare needs five successful episodes of a scenario row on each side
SMALL = ("--episodes", "5", "--workers", "2", "--rounds", "1")
THE_TOOLS_OWN = {"tracecore-perf", "psutil", "msgspec", "structlog", "jsonschema-rs", "scipy", "matplotlib"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    work = tmp_path_factory.mktemp("tracecore")
    path = work / "repo"
    commits = make_repo(path, release_sdist(Path(os.environ.get("TRACECORE_SDIST_CACHE", work / "cache"))))
    # the repository's own agents/ (TraceCore resolves agents/x.py from its working directory
    # first): the toy agent as shipped, then the same agent doing more work per step
    shipped = (path / "agent_bench" / "agents" / "toy_agent.py").read_text(encoding="utf-8-sig")
    (path / "agents").mkdir()
    (path / "agents" / "toy_agent.py").write_text(shipped)
    git(path, "add", "-A")
    git(path, "commit", "--quiet", "--no-gpg-sign", "-m", "the toy agent in the repository's agents/")
    commits["own_agent"] = git(path, "rev-parse", "HEAD")
    anchor = "    def act(self):\n"
    assert anchor in shipped
    (path / "agents" / "toy_agent.py").write_text(
        shipped.replace(anchor, anchor + "        sum(i * i for i in range(3000))  # more work per step\n", 1)
    )
    git(path, "commit", "--quiet", "--no-gpg-sign", "-am", "toy agent: more work per step")
    commits["dearer_agent"] = git(path, "rev-parse", "HEAD")
    return path, commits


def _manifest(side_dir: Path) -> dict:
    (path,) = side_dir.glob("perf-manifest-*.json")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def own_agents(repo, tmp_path_factory) -> dict:
    """One continuous run: the shipped toy agent in the repository's agents/ (base) against
    a dearer copy of it (head)."""
    path, commits = repo
    work = tmp_path_factory.mktemp("own-agents")
    scenario = scenario_file(work / "toy.json", [TOY])
    done = harness(
        "continuous", commits["own_agent"], commits["dearer_agent"], "--repo", str(path), *SMALL,
        "--scenario", str(scenario), "--output-dir", "out", "--format", "json", "--fail-on", "regression",
        cwd=work,
    )  # fmt: skip
    return {"done": done, "out": work / "out", "commits": commits}


@pytest.mark.long
def test_each_side_runs_its_own_revision_and_its_own_agents(own_agents):
    done, out = own_agents["done"], own_agents["out"]
    assert done.returncode == 1, done.stderr  # the dearer agent is a regression
    result = json.loads(done.stdout)
    (row,) = result["rows"]
    assert row["agent"] == "agents/toy_agent.py" and row["verdict"] == "slower" and row["regression"] is True
    record = json.loads((out / "continuous.json").read_text())
    sides = {side["side"]: side for side in record["sides"]}
    assert sides["base"]["commit"] == own_agents["commits"]["own_agent"]
    assert sides["head"]["commit"] == own_agents["commits"]["dearer_agent"]
    for name in ("base", "head"):
        manifest = _manifest(out / name)
        tree, env = Path(sides[name]["tree"]), Path(sides[name]["env"])
        # the agent each side's episodes loaded is its own tree's, not the working directory's
        assert manifest["agents"]["agents/toy_agent.py"] == str((tree / "agents" / "toy_agent.py").resolve())
        assert manifest["interpreter"]["executable"].startswith(str(env))
        assert manifest["interpreter"]["tracecore_dir"].startswith(str(env.resolve()))
        installed = manifest["interpreter"]["environment"]
        assert installed["editable"] == [], installed["editable"]
        assert installed["tracecore_source"] == f"tree {tree.resolve().as_uri()}"
        assert not THE_TOOLS_OWN & set(installed["distributions"]), "the tool's dependencies leaked into a side"
    base_env = _manifest(out / "base")["interpreter"]["environment"]["distributions"]
    head_env = _manifest(out / "head")["interpreter"]["environment"]["distributions"]
    assert base_env == head_env  # one constraints file: the same versions on both sides
    constraints = (out / "constraints.txt").read_text()
    assert "fastapi==" in constraints and "tracecore" not in constraints.lower().split("\n", 1)[1]
    assert record["build_s"] > 0 and record["episodes_s"] > 0


def test_ab_refuses_an_instruction_verdict_across_differently_installed_interpreters(own_agents, tmp_path):
    """The harness's own interpreter (tracecore-perf and its dependencies beside TraceCore,
    from an index) against a side continuous built: ab says how they differ and runs nothing."""
    side = own_agents["out"] / "envs" / "head" / "bin" / "python"
    args = ("--episodes", "5", "--workers", "1", "--rounds", "1", "--instructions", "--output-dir", "ab")
    done = harness("ab", "--python", sys.executable, "--python", str(side), *args, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = [line for line in done.stderr.splitlines() if "error" in line]
    assert "installed differently" in line and "tracecore-perf" in line and "--allow-env-difference" in line
    assert not list((tmp_path / "ab").glob("*/run-*")), "no episode may run before the refusal"


def test_an_agent_that_rewrites_the_other_side_taints_the_run_and_gives_no_verdict(repo, tmp_path):
    """The head's agents/toy_agent.py rewrites the base side's TraceCore as it is imported (when
    the harness first checks it, before any base episode): the base would be dearer and the head
    'faster'. Both sides are stamped once built and looked at before every chunk of episodes."""
    path, commits = repo
    clone = tmp_path / "clone"
    shutil.copytree(path, clone)
    git(clone, "checkout", "--quiet", "-b", "hostile", commits["own_agent"])
    shutil.copy(AGENTS / "other_side_saboteur.py", clone / "agents" / "toy_agent.py")
    git(clone, "commit", "--quiet", "--no-gpg-sign", "-am", "an agent that rewrites the base side")
    scenario = scenario_file(tmp_path / "toy.json", [TOY])
    done = harness(
        "continuous", commits["own_agent"], "hostile", "--repo", str(clone), *SMALL, "--scenario", str(scenario),
        "--output-dir", "out", "--format", "json", "--fail-on", "regression", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 4, done.stderr
    assert done.stdout == ""  # no verdict in any format
    (line,) = [line for line in done.stderr.splitlines() if "run tainted" in line]
    runner = next((tmp_path / "out" / "envs" / "base" / "lib").glob("python3*/site-packages/agent_bench/runner/runner.py"))
    assert "_sabotage" in runner.read_text()  # it did rewrite it ...
    assert str(runner) in line  # ... and the line names it
    record = json.loads((tmp_path / "out" / "continuous.json").read_text())
    assert record["exit_code"] == 4 and record["comparison"] is None and str(runner) in record["changed"]
    assert not list((tmp_path / "out" / "base").glob("run-*")), "the base side ran no episode on the rewritten TraceCore"


def test_the_output_folder_must_be_new_or_empty(repo, tmp_path):
    """Nothing of anyone else's is overwritten: a folder with files in it is refused before
    anything is built, and so is a second continuous on the folder of a first."""
    path, commits = repo
    used = tmp_path / "used"
    used.mkdir()
    (used / "constraints.txt").write_text("mine\n")
    done = harness(
        "continuous", commits["release"], commits["harmless"], "--repo", str(path), "--output-dir", "used", cwd=tmp_path
    )
    assert done.returncode == 2 and "is not empty (constraints.txt...)" in _error_line(done)
    assert sorted(p.name for p in used.iterdir()) == ["constraints.txt"] and (used / "constraints.txt").read_text() == "mine\n"
    inside = harness(
        "continuous", commits["release"], commits["harmless"], "--repo", str(path), "--output-dir", str(path), cwd=tmp_path
    )
    assert inside.returncode == 2 and "is not empty" in _error_line(inside)
    assert git(path, "status", "--porcelain") == ""  # the repository measured is left as it was


def _error_line(done) -> str:
    lines = [line for line in done.stderr.splitlines() if line.startswith("tracecore-perf: error:")]
    assert len(lines) == 1, done.stderr
    return lines[0]


def _nothing_published(out: Path) -> None:
    assert not (out / "base").exists() and not (out / "head").exists()
    assert not (out / "continuous.json").exists()
    for folder in ("envs", "src"):
        assert not any((out / folder).glob("*")) if (out / folder).exists() else True, f"{folder} left half-built"


def test_a_revision_that_does_not_exist_is_one_line(repo, tmp_path):
    path, commits = repo
    done = harness("continuous", commits["release"], "no-such-branch", "--repo", str(path), "--output-dir", "out", cwd=tmp_path)
    assert done.returncode == 2
    assert "revision 'no-such-branch' does not exist" in _error_line(done)
    assert not (tmp_path / "out").exists()


def test_a_memory_limit_beyond_the_host_is_one_line_before_anything_is_built(repo, tmp_path):
    """The run's settings are checked as ``run`` checks them, before either side is built."""
    path, commits = repo
    done = harness(
        "continuous", commits["release"], commits["harmless"], "--repo", str(path), "--output-dir", "out",
        "--memory-limit", "100TiB", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--memory-limit 100 TiB is more than this host's memory" in _error_line(done)
    assert not (tmp_path / "out").exists()


def test_a_repository_that_is_not_tracecore_is_one_line(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "pyproject.toml").write_text('[project]\nname = "something-else"\nversion = "1"\n')
    git(other, "init", "--quiet")
    git(other, "add", "-A")
    git(other, "commit", "--quiet", "--no-gpg-sign", "-m", "not TraceCore")
    done = harness("continuous", "HEAD", "HEAD", "--repo", str(other), "--output-dir", "out", cwd=tmp_path)
    assert done.returncode == 2
    assert "is not TraceCore: its pyproject.toml names 'something-else'" in _error_line(done)
    not_git = harness("continuous", "HEAD", "HEAD", "--repo", str(tmp_path), "--output-dir", "out", cwd=tmp_path)
    assert not_git.returncode == 2 and "not a git repository" in _error_line(not_git)
    assert not (tmp_path / "out").exists()


def test_a_build_that_fails_leaves_nothing_half_built(repo, tmp_path):
    """The base revision cannot be installed (its setup script fails): one line naming the
    side and the step, the head side already built is removed too, nothing is published."""
    path, commits = repo
    clone = tmp_path / "clone"
    shutil.copytree(path, clone)
    git(clone, "checkout", "--quiet", "-b", "broken", commits["release"])
    (clone / "setup.py").write_text("raise SystemExit('this revision does not build')\n")
    git(clone, "add", "-A")
    git(clone, "commit", "--quiet", "--no-gpg-sign", "-m", "a revision that does not build")
    done = harness("continuous", "broken", commits["harmless"], "--repo", str(clone), "--output-dir", "out", cwd=tmp_path)
    assert done.returncode == 2
    line = _error_line(done)
    assert "the base side's build failed to install the revision" in line and "base-build.log" in line
    _nothing_published(tmp_path / "out")


def test_a_side_that_imports_tracecore_from_elsewhere_is_refused(repo, tmp_path):
    """PYTHONPATH puts another TraceCore (the repository's working copy) ahead of the one built:
    the episodes would measure that, so continuous refuses before any episode."""
    path, commits = repo
    done = harness(
        "continuous", commits["release"], commits["harmless"], "--repo", str(path), "--output-dir", "out",
        cwd=tmp_path, env={"PYTHONPATH": str(path)},
    )  # fmt: skip
    assert done.returncode == 2
    line = _error_line(done)
    assert f"imports TraceCore from {path.resolve() / 'agent_bench'}, not from the revision it built" in line
    assert "PYTHONPATH is set" in line
    _nothing_published(tmp_path / "out")
