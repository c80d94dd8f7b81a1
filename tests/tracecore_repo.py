"""A TraceCore git repository for the gate's tests, made from a real release.

TraceCore's own repository is not reachable from CI (PyPI is), so the tests build one: the
source distribution of a TraceCore release from PyPI, committed as it ships, then two
commits a pull request could make:

- ``harmless``: what TraceCore's leaderboard pull request (#93) touched, and nothing an
  episode runs: the README, a web-UI template, the CLI's help text and a new module no
  episode imports;
- ``costly``: about 2% more work on the episode path, in the runner's per-step action check
  (``agent_bench/runner/runner.py``, ``_validate_action``), so every scenario row pays it.

``make_repo(path)`` returns the three commits by those names (``release`` first).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

RELEASE = "1.1.3"
# Rounds of extra work per agent step in the costly commit: ~+2% of the default scenario's
# rows' instructions on CPython 3.11 (measured with `continuous`: docs/continuous.md).
COSTLY_ROUNDS = 400

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "TraceCore fixture",
    "GIT_AUTHOR_EMAIL": "fixture@example.invalid",
    "GIT_COMMITTER_NAME": "TraceCore fixture",
    "GIT_COMMITTER_EMAIL": "fixture@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": os.devnull,  # no user config: the same commits on any machine
}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env={**os.environ, **_GIT_ENV}, check=True
    )
    return done.stdout.strip()


def release_sdist(cache: Path) -> Path:
    """TraceCore's source distribution of ``RELEASE``, from PyPI (kept in ``cache``)."""
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob(f"tracecore-{RELEASE}.tar.gz"))
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             f"tracecore=={RELEASE}", "-d", str(cache)],
            check=True,
        )  # fmt: skip
        found = sorted(cache.glob(f"tracecore-{RELEASE}.tar.gz"))
    return found[0]


def _commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "--no-gpg-sign", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    if old not in text:
        raise AssertionError(f"{path}: the fixture's anchor {old!r} is gone (another TraceCore release?)")
    path.write_text(text.replace(old, new, 1))


def make_repo(path: Path, sdist: Path) -> dict[str, str]:
    """A git repository at ``path``: the release, then ``harmless``, then ``costly``."""
    with tarfile.open(sdist) as archive:
        # the data filter: no owner from the archive (git refuses a repository another user owns)
        options = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        archive.extractall(path.parent / ".sdist", **options)
    shutil.move(str(path.parent / ".sdist" / f"tracecore-{RELEASE}"), path)
    shutil.rmtree(path.parent / ".sdist")
    for generated in ("PKG-INFO", "tracecore.egg-info"):  # made by the sdist build, not in TraceCore's git
        target = path / generated
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    git(path, "init", "--quiet", "--initial-branch=main")
    commits = {"release": _commit(path, f"TraceCore {RELEASE}")}

    with (path / "README.md").open("a") as readme:
        readme.write("\n## Leaderboard\n\nSubmit a signed bundle with `tracecore leaderboard submit`.\n")
    templates = sorted((path / "agent_bench" / "webui" / "templates").glob("*.html"))
    with templates[0].open("a") as page:
        page.write("\n<!-- leaderboard link -->\n")
    (path / "agent_bench" / "leaderboard_view.py").write_text(
        '"""Leaderboard rows for the web UI (no episode imports this)."""\n\n\n'
        "def rows(records):\n    return sorted(records, key=lambda r: r.get('score', 0), reverse=True)\n"
    )
    commits["harmless"] = _commit(path, "docs, web UI and a leaderboard view: nothing an episode runs")

    _replace(
        path / "agent_bench" / "runner" / "runner.py",
        "def _validate_action(action: dict, schema: dict[str, list[str]]) -> tuple[bool, str | None]:\n",
        "def _validate_action(action: dict, schema: dict[str, list[str]]) -> tuple[bool, str | None]:\n"
        f"    _audit = sum(i * i for i in range({COSTLY_ROUNDS}))  # noqa: F841 - the planted cost\n",
    )
    commits["costly"] = _commit(path, "runner: audit every action (about 2% more work per episode)")
    return commits
