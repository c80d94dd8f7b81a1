"""Build one revision of a TraceCore git checkout into an environment of its own.

Both sides of ``continuous`` are built here, the same way, so that what differs between
them is the revision and nothing else (issue: the gate measured how each side was
installed: editable against not, the tool's dependencies beside one side only):

- the revision's tree, exported with ``git archive`` (no untracked file, no build left over
  from the working copy), under ``src/<side>``;
- a fresh virtual environment without pip under ``envs/<side>``, made from one interpreter;
- the tree installed into it non-editable by the harness's own pip (``pip --python``), its
  dependencies held to one constraints file both sides share; nothing of tracecore-perf's;
- the tree's own ``agents/`` compiled with the side's interpreter, as an installed package
  is (a file with no bytecode beside it is compiled again in every episode that loads it);
- then checked: the environment's interpreter imports ``agent_bench`` from that install of
  that tree (not a checkout on ``PYTHONPATH``, not another install).

The side names ``base`` and ``head`` are the same length, so every path an episode sees has
the same length on both sides. Anything that goes wrong is one ``UsageError`` naming the
side and what failed, and the half-built side is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec

from tracecore_perf.errors import UsageError

MARK = ".tracecore-perf-build"  # in every folder this module made, so it only ever removes its own
PIP = [sys.executable, "-m", "pip"]
PIP_QUIET = ["--disable-pip-version-check", "--no-input", "--quiet"]


class BuiltSide(msgspec.Struct, kw_only=True):
    """One revision, built: what the episodes of that side run, and how long it took."""

    side: str  # "base" or "head"
    ref: str  # the revision as given
    commit: str  # its full commit id
    subject: str  # its commit message's first line
    tree: str  # the exported tree: agent paths resolve from here
    env: str  # the virtual environment
    python: str  # its interpreter: the episode interpreter of this side
    tracecore_dir: str  # where that interpreter imports agent_bench from
    build_s: float


def git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)


def check_pip() -> None:
    """The tool's own pip installs into each side's environment (``pip --python``, pip 22.3+)."""
    from importlib import metadata

    try:
        version = metadata.version("pip")
    except metadata.PackageNotFoundError:
        raise UsageError(f"continuous installs each revision with pip, and {sys.executable} has none") from None
    parts = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
    if parts < (22, 3):
        raise UsageError(f"continuous needs pip 22.3 or newer beside the tool (has {version}): python -m pip install -U pip")


def check_repository(repo: Path) -> Path:
    """The top of the git checkout at ``repo``; UsageError when there is none."""
    if not repo.is_dir():
        raise UsageError(f"--repo {repo}: {'not a directory' if repo.exists() else 'no such directory'}")
    try:
        top = git(repo, "rev-parse", "--show-toplevel")
    except FileNotFoundError:
        raise UsageError("continuous needs git on PATH") from None
    if top.returncode == 0:
        return Path(top.stdout.strip())
    if git(repo, "rev-parse", "--is-bare-repository").stdout.strip() == "true":
        return repo.resolve()  # git archive reads a bare repository as well
    raise UsageError(f"--repo {repo}: not a git repository")


def resolve(repo: Path, ref: str) -> tuple[str, str]:
    """``ref``'s full commit id and subject; UsageError when the revision does not exist."""
    if not ref or ref.startswith("-"):
        raise UsageError(f"not a revision: {ref!r}")
    named = git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", ref)
    if named.returncode != 0:
        raise UsageError(f"revision {ref!r} does not exist in {repo} (a shallow clone? fetch it first)")
    found = git(repo, "rev-parse", "--verify", "--quiet", f"{named.stdout.strip()}^{{commit}}")
    if found.returncode != 0:
        kind = git(repo, "cat-file", "-t", named.stdout.strip()).stdout.strip() or "object"
        raise UsageError(f"revision {ref!r} names a {kind}, not a commit")
    commit = found.stdout.strip()
    subject = git(repo, "log", "-1", "--format=%s", commit).stdout.strip()
    return commit, subject


def check_tracecore(repo: Path, ref: str, commit: str) -> None:
    """The revision must be TraceCore's source: a pyproject.toml naming the ``tracecore``
    distribution, and the ``agent_bench`` package."""
    pyproject = git(repo, "show", f"{commit}:pyproject.toml")
    name = None
    if pyproject.returncode == 0:
        from tracecore_perf.compat import tomllib

        try:
            name = tomllib.loads(pyproject.stdout).get("project", {}).get("name")
        except tomllib.TOMLDecodeError:
            name = None
    package = git(repo, "cat-file", "-e", f"{commit}:agent_bench/__init__.py").returncode == 0
    if name != "tracecore" or not package:
        what = f"its pyproject.toml names {name!r}" if name else "it has no readable pyproject.toml"
        what += "" if package else " and no agent_bench package"
        raise UsageError(f"{repo} at {ref} is not TraceCore: {what}")


OUTPUT_MARK = ".tracecore-perf-continuous"  # claims an output folder for one continuous run


def claim(output_dir: Path) -> Path:
    """Take ``output_dir`` for this run: it must be new or empty (a run's environments are
    that run's; nothing of anyone else's is ever overwritten or removed). The mark is made
    with O_EXCL, so of two runs started on one folder the second is refused. Returns it
    resolved."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--output-dir {output_dir}: cannot be created ({exc.strerror or exc})") from None
    out = output_dir.resolve()
    try:
        fd = os.open(out / OUTPUT_MARK, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise UsageError(
            f"--output-dir {output_dir} holds another continuous run (or one is running there): choose a new folder"
        ) from None
    except OSError as exc:
        raise UsageError(f"--output-dir {output_dir}: not writable ({exc.strerror or exc})") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(f"continuous, process {os.getpid()}\n")
    others = sorted(entry.name for entry in out.iterdir() if entry.name != OUTPUT_MARK)
    if others:
        (out / OUTPUT_MARK).unlink()
        raise UsageError(f"--output-dir {output_dir} is not empty ({', '.join(others[:3])}...): give a new or empty folder")
    return out


def check_base_python(python: str) -> str:
    """The interpreter both environments are made from: a path, or a name on PATH, that runs
    Python with the venv module. Returns its path."""
    found = python if os.sep in python else shutil.which(python)
    if not found or not os.path.isfile(found) or not os.access(found, os.X_OK):
        raise UsageError(f"--python {python}: not an executable file{'' if os.sep in python else ' on PATH'}")
    try:
        done = subprocess.run(
            [found, "-c", "import sys, venv; print('python %d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"--python {python}: cannot run it ({exc})") from None
    if done.returncode != 0 or not done.stdout.startswith("python "):
        raise UsageError(f"--python {python}: not a Python with the venv module")
    return found


def check_requirement(requirement: str) -> None:
    """``--with``: a requirement, never a pip option (``-e``: an editable install is what the
    sides must not be)."""
    if not requirement.strip() or requirement.lstrip().startswith("-"):
        raise UsageError(f"--with {requirement!r}: a requirement (name, specifier or URL), not a pip option")


def stamp(side: BuiltSide) -> dict[str, tuple[int, int, int, int]]:
    """Every file and folder of the side's environment and tree, by size, inode, change time
    and mode: taken once the side is built, before any agent's code has run, and compared at
    every turn of the episodes (an agent's module code runs outside both sides' episodes, and
    could rewrite the other side's TraceCore or agents; a change time cannot be set back)."""
    found: dict[str, tuple[int, int, int, int]] = {}
    for root in (side.env, side.tree):
        for folder, dirs, files in os.walk(root):
            for name in [*dirs, *files]:
                path = os.path.join(folder, name)
                with contextlib.suppress(FileNotFoundError):
                    info = os.lstat(path)
                    found[path] = (info.st_size, info.st_ino, info.st_ctime_ns, info.st_mode)
    return found


def changed(before: dict[str, tuple[int, int, int, int]], after: dict[str, tuple[int, int, int, int]]) -> list[str]:
    """The paths added, removed or changed between two stamps."""
    return sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))


def _fresh(folder: Path) -> None:
    """An empty folder of ours at ``folder``: one this module made before is replaced, anything
    else there is refused (never removed)."""
    if folder.is_symlink() or (folder.exists() and not (folder / MARK).is_file()):
        raise UsageError(f"{folder} exists and was not made by continuous: remove it or choose another --output-dir")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / MARK).write_text("made by tracecore-perf continuous; replaced by the next build\n")


def remove(folder: Path) -> None:
    if folder.is_dir() and not folder.is_symlink() and (folder / MARK).is_file():
        shutil.rmtree(folder, ignore_errors=True)


def _step(side: str, what: str, command: list[str], log: Path, **kwargs) -> subprocess.CompletedProcess:
    """Run one build step, its output appended to ``log``; UsageError naming the side, the
    step and pip's (or git's) own words when it fails. The step runs in a process group of
    its own, killed whole if we are interrupted (pip's build backend is a grandchild)."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **kwargs
    )
    try:
        stdout, stderr = process.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    with log.open("a") as fh:
        fh.write(f"$ {' '.join(command)}\n{stdout}{stderr}\n")
    if process.returncode != 0:
        raise UsageError(
            f"the {side} side's build failed to {what} (exit {process.returncode}): {_said(stderr or stdout)} (log: {log})"
        )
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _said(output: str) -> str:
    """What a failed pip (or git) said, in a line: its first ERROR and the line that names a
    conflict, else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    picked = [next((line for line in lines if line.startswith("ERROR")), "")]
    picked.append(next((line for line in lines if "conflict" in line.lower() and line not in picked), ""))
    text = " ".join(line for line in picked if line) or (lines[-1] if lines else "")
    return text[:400]


def _export(repo: Path, commit: str, tree: Path, side: str, log: Path) -> None:
    archive = subprocess.Popen(["git", "-C", str(repo), "archive", "--format=tar", commit], stdout=subprocess.PIPE)
    try:
        _step(side, "export the revision's tree", ["tar", "-x", "-C", str(tree)], log, stdin=archive.stdout)
    finally:
        assert archive.stdout is not None
        archive.stdout.close()
        if archive.wait() != 0:
            raise UsageError(
                f"the {side} side's build failed to export the revision's tree (git archive exit {archive.returncode})"
            )


def env_python(env: Path) -> Path:
    return env / "bin" / "python"


# Run by the side's interpreter as a file, as the zygote runs (sys.path[0] is the file's own
# folder, never the working directory): where agent_bench comes from and how it was installed.
_WHERE = """\
import json, os, sys
from importlib import metadata
out = {"python": sys.executable, "prefix": sys.prefix}
try:
    import agent_bench
    out["agent_bench"] = os.path.realpath(os.path.dirname(agent_bench.__file__))
    import agent_bench.runner.runner  # what every episode runs, and what it imports
except Exception as exc:
    out["error"] = f"{type(exc).__name__}: {exc}"
try:
    dist = metadata.distribution("tracecore")
    out["direct_url"] = json.loads(dist.read_text("direct_url.json") or "{}")
except metadata.PackageNotFoundError:
    out["direct_url"] = None
print(json.dumps(out))
"""


def where_tracecore(python: Path, scratch: Path) -> dict:
    """What ``python`` imports as TraceCore, run as the zygote would be (a file, this
    process's environment: a ``PYTHONPATH`` applies as it will to the episodes)."""
    script = scratch / "where_tracecore.py"
    script.write_text(_WHERE)
    done = subprocess.run([str(python), str(script)], capture_output=True, text=True, cwd=scratch)
    script.unlink()
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": (done.stderr.strip().splitlines() or ["no answer"])[-1]}


def check_built(side: str, env: Path, tree: Path, found: dict) -> str:
    """The side's interpreter must import agent_bench from its own environment, installed
    non-editable from its own tree; else UsageError naming where it comes from."""
    if "error" in found:
        hint = ""
        if found["error"].startswith("ModuleNotFoundError"):
            hint = " (a dependency the revision does not declare? --with REQUIREMENT installs it on both sides)"
        raise UsageError(f"the {side} side's interpreter cannot import TraceCore's runner: {found['error']}{hint}")
    imported = found["agent_bench"]
    inside = imported.startswith(os.path.realpath(env) + os.sep)
    direct = found.get("direct_url") or {}
    from_tree = direct.get("url") == tree.resolve().as_uri() and not (direct.get("dir_info") or {}).get("editable")
    if not (inside and from_tree):
        hint = " (PYTHONPATH is set)" if os.environ.get("PYTHONPATH") else ""
        raise UsageError(
            f"the {side} side imports TraceCore from {imported}, not from the revision it built ({env}){hint}: "
            "the measurement would not be of that revision"
        )
    return imported


def build_side(
    side: str,
    repo: Path,
    ref: str,
    commit: str,
    subject: str,
    root: Path,
    *,
    base_python: str,
    constraints: Path | None,
    also: tuple[str, ...] = (),
) -> BuiltSide:
    """Build ``commit`` as ``side`` under ``root`` (``src/<side>``, ``envs/<side>``, the log
    ``logs/<side>-build.log``), with the requirements ``also`` installed beside it in the same
    pip call. UsageError on any failure, with the side removed."""
    started = time.monotonic()
    tree, env, logs = root / "src" / side, root / "envs" / side, root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{side}-build.log"
    log.write_text(f"# the {side} side: {ref} = {commit} ({subject})\n")
    try:
        _fresh(tree)
        _fresh(env)
        _export(repo, commit, tree, side, log)
        _step(side, "make its virtual environment", [base_python, "-m", "venv", "--without-pip", str(env)], log)
        python = env_python(env)
        install = [*PIP, "--python", str(python), "install", *PIP_QUIET, "--no-warn-script-location"]
        install += ["--constraint", str(constraints)] if constraints else []
        _step(side, "install the revision (pip install, non-editable)", [*install, str(tree), *also], log)
        if (tree / "agents").is_dir():  # the agents episodes resolve from the tree, compiled as installed code is
            _step(side, "compile the tree's agents", [str(python), "-m", "compileall", "-q", str(tree / "agents")], log)
        tracecore_dir = check_built(side, env, tree, where_tracecore(python, env))
    except BaseException:
        remove(tree)
        remove(env)
        raise
    return BuiltSide(
        side=side,
        ref=ref,
        commit=commit,
        subject=subject,
        tree=str(tree),
        env=str(env),
        python=str(python),
        tracecore_dir=tracecore_dir,
        build_s=round(time.monotonic() - started, 2),
    )


def freeze(side: BuiltSide, path: Path, log: Path) -> Path:
    """The side's resolved dependencies (all but TraceCore) as a constraints file at ``path``:
    what the other side is installed with."""
    done = _step(
        side.side,
        "list its installed dependencies",
        [*PIP, "--python", side.python, "freeze", *PIP_QUIET, "--exclude", "tracecore"],
        log,
    )
    path.write_text(
        f"# the dependencies {side.side} ({side.commit[:12]}) resolved to; both sides of continuous are installed with them\n"
        + done.stdout
    )
    return path
