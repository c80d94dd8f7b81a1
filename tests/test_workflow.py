"""The GitHub Actions workflow a TraceCore maintainer drops into their repository: it is valid
against GitHub's workflow schema (check-jsonschema's vendored copy, no network), it does what a
maintainer's CI needs (the slice, the instruction gate, one PR comment, history kept across runs
of the default branch and checked), and every tracecore_perf command in it is one our CLI accepts."""

from __future__ import annotations

import shlex

import pytest
import yaml

from tracecore_perf import cli

from conftest import REPO

WORKFLOW = REPO / "deliverables" / "ci" / "tracecore-perf.yml"


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _steps(workflow: dict) -> list[dict]:
    (job,) = workflow["jobs"].values()
    return job["steps"]


def _commands(workflow: dict) -> list[list[str]]:
    """Every ``python -m tracecore_perf ...`` line, continuation lines joined, with the shell
    variables replaced by values of the kind they hold."""
    found = []
    for step in _steps(workflow):
        script = step.get("run", "").replace("\\\n", " ")
        for line in script.splitlines():
            line = line.strip()
            if line.startswith("python -m tracecore_perf"):
                line = line.split(">", 1)[0].split("||", 1)[0]  # drop the redirections and fallbacks
                values = {"$STAMP": "20260101T000000Z", "$PERF_OUT": "perf-out", "$BASELINE": "b.json", "$LABEL": "abc123"}
                for name, value in values.items():
                    line = line.replace(f'"{name}"', value)
                found.append(shlex.split(line)[3:])
    return found


def test_it_is_valid_against_githubs_workflow_schema(tmp_path):
    from check_jsonschema.cli.main_command import main as check_jsonschema
    from click.testing import CliRunner

    def check(path) -> int:
        return CliRunner().invoke(check_jsonschema, ["--builtin-schema", "vendor.github-workflows", str(path)]).exit_code

    assert check(WORKFLOW) == 0
    broken = tmp_path / "broken.yml"  # a job without runs-on: the schema catches it
    broken.write_text(WORKFLOW.read_text().replace("    runs-on: ubuntu-latest\n", "", 1))
    assert check(broken) != 0


def test_it_runs_on_pull_requests_and_the_default_branch_with_the_least_permissions(workflow):
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "pull_request" in triggers and triggers["push"]["branches"] == ["main"]
    assert workflow["permissions"] == {"contents": "read"}
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}  # the comment, nothing more


def test_it_runs_the_slice_checks_it_and_uploads_bundle_and_report(workflow):
    commands = _commands(workflow)
    run = next(c for c in commands if c[0] not in ("check", "compare", "report", "ab"))
    assert run[run.index("--episodes") + 1] == "24" and "--compress" in run and "--report" in run
    checks = [c for c in commands if c[0] == "check"]
    assert checks and all(c[c.index("--format") + 1] == "github" for c in checks)
    uploads = [s["with"]["path"] for s in _steps(workflow) if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert any("perf-artifacts-" in p and p.strip().endswith(".zip") for p in uploads)
    assert any("perf-report-" in p and ".html" in p for p in uploads)
    assert any("GITHUB_STEP_SUMMARY" in s.get("run", "") for s in _steps(workflow))
    compares = [c for c in commands if c[0] == "compare"]
    assert compares and {c[c.index("--format") + 1] for c in compares} == {"github", "markdown"}
    assert workflow["env"]["BASELINE_DIR"].endswith("baseline-slice")  # the slice against a slice


def test_every_command_in_it_parses_with_our_cli(workflow):
    parsers = {name: cli.subcommand(name).parser() for name in ("check", "compare", "report", "ab", "history", "export")}
    commands = _commands(workflow)
    assert len(commands) >= 3
    for argv in commands:
        parser = parsers.get(argv[0])
        if parser is None:
            cli.subcommand("run").run_parser().parse_args(argv)
        else:
            parser.parse_args(argv[1:])


def test_the_gate_counts_instructions_of_the_base_commit_against_this_one(workflow):
    (gate,) = [c for c in _commands(workflow) if c[0] == "ab"]
    assert "--instructions" in gate and gate[gate.index("--fail-on") + 1] == "regression"
    assert gate[gate.index("--episodes") + 1] == "24" and "--strict-spec" in gate
    pythons = [gate[i + 1] for i, flag in enumerate(gate) if flag == "--python"]
    assert len(pythons) == 2 and "base-venv" in pythons[0]
    steps = _steps(workflow)
    assert any("apt-get install" in s.get("run", "") and "valgrind" in s.get("run", "") for s in steps)
    base = next(s for s in steps if "git worktree add" in s.get("run", ""))
    assert base["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"


def test_untrusted_expressions_stay_out_of_scripts(workflow):
    # ${{ }} inside `run:` is pasted into the shell before it runs; values go through env: instead.
    for step in _steps(workflow):
        assert "${{" not in step.get("run", ""), step.get("name")


def test_one_pr_comment_is_posted_or_updated_with_compares_markdown(workflow):
    from tracecore_perf.export.markdown import MARKER

    steps = _steps(workflow)
    (write,) = [s for s in steps if "perf-comment.md" in s.get("run", "")]
    (comparing,) = [c for c in _commands({"jobs": {"j": {"steps": [write]}}}) if c[0] == "compare"]
    assert comparing[1:3] == ["perf-ab/a", "perf-ab/b"] and comparing[comparing.index("--format") + 1] == "markdown"
    (post,) = [s for s in steps if s.get("uses", "").startswith("actions/github-script@")]
    script = post["with"]["script"]
    assert f"'{MARKER}'" in script and "updateComment" in script and "createComment" in script
    assert "head.repo.full_name == github.repository" in post["if"]  # a fork's token cannot comment


def test_history_is_kept_across_runs_of_the_default_branch_and_checked(workflow):
    steps = _steps(workflow)
    restore = next(s for s in steps if s.get("uses", "").startswith("actions/cache/restore@"))
    save = next(s for s in steps if s.get("uses", "").startswith("actions/cache/save@"))
    assert restore["with"]["restore-keys"] == "tracecore-perf-history-" and save["with"]["key"].startswith(
        "tracecore-perf-history-"
    )
    # a cache is restored only under the path it was saved with; a re-run saves under a key of its own
    assert restore["with"]["path"] == save["with"]["path"] and "run_attempt" in save["with"]["key"]
    assert "github.event_name == 'push'" in save["if"] and "default_branch" in save["if"]
    assert steps.index(restore) < next(i for i, s in enumerate(steps) if "history add" in s.get("run", "")) < steps.index(save)
    history = [c for c in _commands(workflow) if c[0] == "history"]
    added = next(c for c in history if c[1] == "add")
    assert "--db" in added and "--label" in added
    gate = next(c for c in history if c[1] == "check" and "--fail-on" in c)
    assert gate[gate.index("--fail-on") + 1] == "regression"
    uploads = " ".join(s["with"]["path"] for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert "history.html" in uploads and any(c[1] == "report" for c in history)
