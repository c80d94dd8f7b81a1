"""Runs a GitHub Actions workflow's jobs on this machine the way a hosted runner would, for the
tests of ``deliverables/ci/``: jobs in the order their ``needs`` give, each job's ``if``, then
its steps in order, each ``run:`` step with bash as Actions runs it (``bash --noprofile --norc
-eo pipefail``), in the job's workspace, with the ``env:`` of the workflow, the job and the
step, the ``GITHUB_*`` variables and files (``GITHUB_OUTPUT``, ``GITHUB_ENV``, ``GITHUB_PATH``,
``GITHUB_STEP_SUMMARY``) and ``RUNNER_TEMP``; a step's ``if`` decides whether it runs, as on
GitHub (``success()`` unless the expression says otherwise).

``${{ }}`` expressions are evaluated by :func:`evaluate`, which knows the small set the
workflows use (contexts, ``!``, ``&&``, ``||``, ``==``, ``!=``, ``toJSON()``, ``contains()``,
the status functions) and refuses anything else, so a workflow that grows past it fails here
rather than being half-understood.

``uses:`` steps are replaced by local stand-ins (:data:`STANDINS`): ``actions/checkout`` clones
the ``origin`` repository given to the driver and checks out ``github.sha``;
``actions/setup-python`` puts a base interpreter (no virtual environment, nothing of ours) first
on PATH as ``python``; ``actions/upload-artifact`` and ``actions/download-artifact`` copy to and
from a folder per artifact. Any other action is skipped, and the step says why.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# --- expressions --------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+(?:\.\d+)?)|(?P<op>==|!=|&&|\|\||[!().,\[\]])"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_-]*))"
)
FUNCTIONS = {"always", "cancelled", "success", "failure", "toJSON", "contains"}


class ExpressionError(ValueError):
    pass


def _tokens(text: str) -> list[tuple[str, str]]:
    out, at = [], 0
    while at < len(text):
        if text[at:].strip() == "":
            break
        match = _TOKEN.match(text, at)
        if match is None or match.end() == at:
            raise ExpressionError(f"cannot read {text[at:]!r} in {text!r}")
        kind = match.lastgroup
        assert kind is not None
        out.append((kind, match.group(kind)))
        at = match.end()
    return out


def _loose_equal(a: object, b: object) -> bool:
    """GitHub's ``==``: strings case-insensitively; null equals the empty string."""
    a = "" if a is None else a
    b = "" if b is None else b
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    return a == b


def truthy(value: object) -> bool:
    return value not in (None, False, 0, "")


def to_text(value: object) -> str:
    """A value as ``${{ }}`` pastes it into a string."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, indent=2)
    return str(value)


class _Parser:
    def __init__(self, text: str, contexts: dict, status: dict):
        self.text, self.tokens, self.at = text, _tokens(text), 0
        self.contexts, self.status = contexts, status

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise ExpressionError(f"expected {value or 'more'} in {self.text!r}")
        self.at += 1
        return token

    def parse(self) -> object:
        value = self.either()
        if self.peek() is not None:
            raise ExpressionError(f"unexpected {self.peek()[1]!r} in {self.text!r}")  # type: ignore[index]
        return value

    def either(self) -> object:
        value = self.both()
        while self.peek() == ("op", "||"):
            self.take()
            other = self.both()
            value = value if truthy(value) else other
        return value

    def both(self) -> object:
        value = self.equality()
        while self.peek() == ("op", "&&"):
            self.take()
            other = self.equality()
            value = other if truthy(value) else value
        return value

    def equality(self) -> object:
        value = self.unary()
        while self.peek() in (("op", "=="), ("op", "!=")):
            op = self.take()[1]
            other = self.unary()
            value = _loose_equal(value, other) if op == "==" else not _loose_equal(value, other)
        return value

    def unary(self) -> object:
        if self.peek() == ("op", "!"):
            self.take()
            return not truthy(self.unary())
        return self.postfix()

    def postfix(self) -> object:
        value = self.primary()
        while self.peek() in (("op", "."), ("op", "[")):
            if self.take()[1] == ".":
                key = self.take()[1]
            else:
                key = to_text(self.either())
                self.take("]")
            value = value.get(key) if isinstance(value, dict) else None
        return value

    def primary(self) -> object:
        kind, text = self.take()
        if kind == "string":
            return text[1:-1].replace("''", "'")
        if kind == "number":
            return float(text) if "." in text else int(text)
        if kind == "op" and text == "(":
            value = self.either()
            self.take(")")
            return value
        if kind != "name":
            raise ExpressionError(f"unexpected {text!r} in {self.text!r}")
        if text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text]
        if self.peek() == ("op", "("):
            return self.call(text)
        if text not in self.contexts:
            raise ExpressionError(f"unknown context {text!r} in {self.text!r}")
        return self.contexts[text]

    def call(self, name: str) -> object:
        if name not in FUNCTIONS:
            raise ExpressionError(f"the driver does not know {name}() (in {self.text!r})")
        self.take("(")
        args = []
        while self.peek() != ("op", ")"):
            args.append(self.either())
            if self.peek() == ("op", ","):
                self.take()
        self.take(")")
        if name == "toJSON":
            return json.dumps(args[0], indent=2)
        if name == "contains":
            haystack, needle = args
            if isinstance(haystack, list):
                return any(_loose_equal(item, needle) for item in haystack)
            return to_text(needle).lower() in to_text(haystack).lower()
        failed = self.status.get("failed", False)
        return {"always": True, "cancelled": False, "success": not failed, "failure": failed}[name]


def evaluate(text: str, contexts: dict, status: dict | None = None) -> object:
    """One expression (what stands between ``${{`` and ``}}``, or a bare ``if:``)."""
    return _Parser(text, contexts, status or {}).parse()


_TEMPLATE = re.compile(r"\$\{\{(.*?)\}\}", re.S)
_ONE = re.compile(r"\$\{\{((?:(?!\}\}).)*)\}\}", re.S)  # a string that is one expression and nothing else


def interpolate(value: object, contexts: dict, status: dict | None = None) -> object:
    """Every ``${{ }}`` in a string replaced by its value; a string that is one expression and
    nothing else keeps the value's type (as GitHub does for ``if:`` and ``with:``)."""
    if not isinstance(value, str):
        return value
    whole = _ONE.fullmatch(value.strip())
    if whole:
        return evaluate(whole.group(1), contexts, status)
    return _TEMPLATE.sub(lambda m: to_text(evaluate(m.group(1), contexts, status)), value)


def condition(text: object, contexts: dict, status: dict) -> bool:
    """A job's or a step's ``if:``: ``success() && (...)`` unless it calls a status function."""
    if text is None:
        return not status.get("failed", False)
    text = str(text).strip()
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2]
    if not re.search(r"\b(always|cancelled|success|failure)\(", text):
        text = f"success() && ({text})"
    return truthy(evaluate(text, contexts, status))


def expressions(node: object) -> list[str]:
    """Every expression in a parsed workflow: inside ``${{ }}`` anywhere, and each bare ``if:``."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "if" and isinstance(value, str) and "${{" not in value:
                found.append(value)
            else:
                found += expressions(value)
    elif isinstance(node, list):
        for item in node:
            found += expressions(item)
    elif isinstance(node, str):
        found += [m.group(1) for m in _TEMPLATE.finditer(node)]
    return found


# --- running a workflow ---------------------------------------------------------------------------


@dataclass
class StepResult:
    name: str
    outcome: str  # success, failure, skipped
    exit_code: int | None = None
    output: str = ""  # stdout and stderr, interleaved
    summary: str = ""  # what the step appended to GITHUB_STEP_SUMMARY
    outputs: dict = field(default_factory=dict)
    note: str = ""  # why a stand-in skipped it
    seconds: float = 0.0


@dataclass
class JobResult:
    name: str
    result: str  # success, failure, skipped
    steps: list[StepResult] = field(default_factory=list)
    outputs: dict = field(default_factory=dict)

    def step(self, step_id_or_name: str) -> StepResult:
        (found,) = [s for s in self.steps if s.name == step_id_or_name]
        return found

    @property
    def summary(self) -> str:
        """The job's step summary, as GitHub shows it: each step's part in order."""
        return "".join(s.summary for s in self.steps)


def _read_pairs(path: Path) -> dict[str, str]:
    """``name=value`` lines and ``name<<DELIMITER`` blocks, as Actions reads GITHUB_OUTPUT and GITHUB_ENV."""
    found: dict[str, str] = {}
    lines = path.read_text().splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, i + 1)
            found[name] = "\n".join(lines[i + 1 : end])
            i = end + 1
            continue
        if "=" in line:
            name, value = line.split("=", 1)
            found[name] = value
        i += 1
    return found


# what hosted runners have on PATH, less anything of this test session (its virtual environment, pyenv shims)
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Driver:
    """One workflow run: ``Driver(...).run()`` → ``{job id: JobResult}``."""

    def __init__(
        self,
        workflow: dict,
        *,
        event_name: str,
        event: dict,
        sha: str,
        ref: str,
        origin: Path,
        root: Path,
        python: str,
        settings: dict | None = None,
        vars: dict | None = None,
        inputs: dict | None = None,
        env: dict | None = None,
        repository: str = "owner/tracecore",
    ):
        """``settings``: values for the workflow's own ``env:`` block, as a maintainer edits them
        (each must be one the workflow has); ``env``: the runner's environment beneath it."""
        unknown = set(settings or {}) - set(workflow.get("env") or {})
        if unknown:
            raise ValueError(f"the workflow has no setting {sorted(unknown)}")
        workflow = {**workflow, "env": {**(workflow.get("env") or {}), **(settings or {})}}
        self.workflow, self.origin, self.root, self.python = workflow, origin, root, python
        self.base_env = {"HOME": os.environ.get("HOME", "/root"), "PATH": SYSTEM_PATH, "LANG": "C.UTF-8", **(env or {})}
        if "TMPDIR" in os.environ:
            self.base_env.setdefault("TMPDIR", os.environ["TMPDIR"])
        self.artifacts = root / "artifacts"
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.github = {
            "event_name": event_name,
            "event": event,
            "sha": sha,
            "ref": ref,
            "ref_name": ref.rsplit("/", 1)[-1],
            "repository": repository,
            "repository_owner": repository.split("/")[0],
            "run_id": "4242",
            "run_attempt": "1",
            "actor": "maintainer",
            "server_url": "https://github.com",
            "workspace": "",
        }
        self.vars, self.inputs = vars or {}, inputs or {}

    def run(self, only: list[str] | None = None) -> dict[str, JobResult]:
        jobs = self.workflow["jobs"]
        done: dict[str, JobResult] = {}
        while len(done) < len(jobs):
            ready = [j for j in jobs if j not in done and all(n in done for n in _needs(jobs[j]))]
            if not ready:
                raise AssertionError(f"jobs that can never start: {sorted(set(jobs) - set(done))}")
            for job_id in ready:
                if only is not None and job_id not in only:
                    done[job_id] = JobResult(job_id, "skipped")
                else:
                    done[job_id] = self._job(job_id, jobs[job_id], done)
        return done

    def _contexts(self, env: dict, needs: dict, steps: dict, temp: str) -> dict:
        return {
            "github": self.github,
            "env": env,
            "vars": self.vars,
            "inputs": self.inputs,
            "needs": needs,
            "steps": steps,
            "runner": {"temp": temp, "os": "Linux"},
        }

    def _job(self, job_id: str, job: dict, done: dict[str, JobResult]) -> JobResult:
        needs = {n: {"outputs": done[n].outputs, "result": done[n].result} for n in _needs(job)}
        failed_needs = any(done[n].result != "success" for n in _needs(job))
        home = self.root / job_id
        workspace, temp = home / "workspace", home / "temp"
        workspace.mkdir(parents=True)
        temp.mkdir()
        env: dict = {}
        contexts = self._contexts(env, needs, {}, str(temp))
        for key, value in (self.workflow.get("env") or {}).items():
            env[key] = to_text(interpolate(value, contexts))
        if not condition(job.get("if"), contexts, {"failed": failed_needs}):
            return JobResult(job_id, "skipped")
        for key, value in (job.get("env") or {}).items():
            env[key] = to_text(interpolate(value, contexts))

        result = JobResult(job_id, "success")
        steps: dict = {}
        paths: list[str] = []
        github_env: dict = {}
        for number, step in enumerate(job["steps"]):
            name = step.get("id") or step.get("name") or step.get("uses") or f"step {number}"
            status = {"failed": result.result == "failure"}
            step_contexts = self._contexts({**env, **github_env}, needs, steps, str(temp))
            if not condition(step.get("if"), step_contexts, status):
                result.steps.append(StepResult(name, "skipped"))
                steps[name] = {"outputs": {}, "outcome": "skipped", "conclusion": "skipped"}
                continue
            step_env = {**env, **github_env}
            for key, value in (step.get("env") or {}).items():
                step_env[key] = to_text(interpolate(value, step_contexts, status))
            started = time.monotonic()
            files = {kind: home / f"{kind}-{number}" for kind in ("output", "env", "path", "summary")}
            for path in files.values():
                path.write_text("")
            if "run" in step:
                done_step = self._run(step, step_env, files, workspace, temp, paths, step_contexts, status)
            else:
                with_ = {k: interpolate(v, step_contexts, status) for k, v in (step.get("with") or {}).items()}
                done_step = self._uses(step["uses"], with_, workspace, temp, paths, home)
            done_step.name, done_step.seconds = name, round(time.monotonic() - started, 1)
            done_step.outputs = _read_pairs(files["output"])
            done_step.summary = files["summary"].read_text()
            github_env.update(_read_pairs(files["env"]))
            paths = [line for line in files["path"].read_text().splitlines() if line][::-1] + paths
            result.steps.append(done_step)
            steps[name] = {"outputs": done_step.outputs, "outcome": done_step.outcome, "conclusion": done_step.outcome}
            if done_step.outcome == "failure" and not step.get("continue-on-error"):
                result.result = "failure"
        out_contexts = self._contexts({**env, **github_env}, needs, steps, str(temp))
        result.outputs = {k: to_text(interpolate(v, out_contexts)) for k, v in (job.get("outputs") or {}).items()}
        return result

    def _process_env(self, step_env: dict, workspace: Path, temp: Path, paths: list[str], files: dict) -> dict:
        return {
            **self.base_env,
            **step_env,
            "PATH": ":".join([*paths, self.base_env["PATH"]]),
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": self.github["event_name"],
            "GITHUB_SHA": self.github["sha"],
            "GITHUB_REF": self.github["ref"],
            "GITHUB_REPOSITORY": self.github["repository"],
            "GITHUB_RUN_ID": self.github["run_id"],
            "GITHUB_ACTOR": self.github["actor"],
            "GITHUB_SERVER_URL": self.github["server_url"],
            "GITHUB_WORKSPACE": str(workspace),
            "RUNNER_TEMP": str(temp),
            "GITHUB_OUTPUT": str(files["output"]),
            "GITHUB_ENV": str(files["env"]),
            "GITHUB_PATH": str(files["path"]),
            "GITHUB_STEP_SUMMARY": str(files["summary"]),
        }

    def _run(self, step, step_env, files, workspace, temp, paths, contexts, status) -> StepResult:
        script = interpolate(step["run"], contexts, status)
        cwd = workspace / str(step.get("working-directory", "."))
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", to_text(script)],
            cwd=cwd,
            env=self._process_env(step_env, workspace, temp, paths, files),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        return StepResult("", "success" if done.returncode == 0 else "failure", done.returncode, done.stdout)

    # --- stand-ins for the actions the workflows use

    def _uses(self, uses: str, with_: dict, workspace: Path, temp: Path, paths: list[str], home: Path) -> StepResult:
        action = uses.split("@", 1)[0]
        standin = STANDINS.get(action)
        if standin is None:
            return StepResult("", "skipped", note=f"{action}: no local stand-in (it needs GitHub's API)")
        return standin(self, with_, workspace, temp, paths, home)


def _needs(job: dict) -> list[str]:
    needs = job.get("needs") or []
    return [needs] if isinstance(needs, str) else list(needs)


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def _checkout(driver: Driver, with_: dict, workspace: Path, temp, paths, home) -> StepResult:
    """A full clone of ``origin`` (every branch as ``origin/*``, as fetch-depth 0 fetches), at github.sha."""
    _git("clone", "--quiet", "--no-checkout", str(driver.origin), str(workspace), cwd=home)
    _git("checkout", "--quiet", "--detach", driver.github["sha"], cwd=workspace)
    return StepResult("", "success", 0, f"checked out {driver.github['sha']}")


def _setup_python(driver: Driver, with_: dict, workspace, temp: Path, paths: list[str], home: Path) -> StepResult:
    """``python`` (and ``python3``) on PATH: a base interpreter, no virtual environment."""
    folder = home / "python-bin"
    folder.mkdir(exist_ok=True)
    for name in ("python", "python3"):
        (folder / name).symlink_to(driver.python)
    paths.insert(0, str(folder))
    return StepResult("", "success", 0, f"python {with_.get('python-version')}: {driver.python}")


def _matches(pattern: str, workspace: Path) -> list[Path]:
    pattern = pattern.strip()
    full = pattern if os.path.isabs(pattern) else str(workspace / pattern)
    return [Path(p) for p in sorted(glob.glob(full.rstrip("/")))]


def _upload(driver: Driver, with_: dict, workspace: Path, temp, paths, home) -> StepResult:
    target = driver.artifacts / str(with_["name"])
    found = [p for line in str(with_["path"]).splitlines() if line.strip() for p in _matches(line, workspace)]
    if not found:
        missing = with_.get("if-no-files-found", "warn")
        return StepResult("", "failure" if missing == "error" else "success", None, f"no files: {with_['path']}")
    target.mkdir(parents=True, exist_ok=True)
    for path in found:  # a folder's contents go to the artifact's top, as upload-artifact does for one folder
        if path.is_dir():
            shutil.copytree(path, target if len(found) == 1 else target / path.name, dirs_exist_ok=True)
        else:
            shutil.copy2(path, target / path.name)
    return StepResult("", "success", 0, f"uploaded {len(found)} path(s) as {with_['name']}")


def _download(driver: Driver, with_: dict, workspace: Path, temp, paths, home) -> StepResult:
    source = driver.artifacts / str(with_["name"])
    if not source.is_dir():
        return StepResult("", "failure", None, f"no artifact {with_['name']}")
    shutil.copytree(source, Path(str(with_.get("path") or workspace)), dirs_exist_ok=True)
    return StepResult("", "success", 0, f"downloaded {with_['name']}")


STANDINS = {
    "actions/checkout": _checkout,
    "actions/setup-python": _setup_python,
    "actions/upload-artifact": _upload,
    "actions/download-artifact": _download,
}


def base_python() -> str:
    """The interpreter this test session's virtual environment was made from."""
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))
