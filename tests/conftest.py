"""Shared helpers: run the real harness as a subprocess, and check the machine for
processes an episode left behind.

Tests that start real episodes (the harness as a process, a zygote) are marked ``slow``;
``python -m pytest -m "not slow"`` runs the rest, the fast layer, in seconds. The fast layer
is held to it: a test not marked slow that starts a process fails (``_no_process_unless_slow``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib.font_manager  # noqa: F401 - see below
import numpy.testing  # noqa: F401 - see below
import psutil
import pytest

# numpy < 2's numpy.testing runs `lscpu` once, when first imported (check_support_sve), and
# scipy imports it lazily, from whichever test first computes a statistic; matplotlib's font
# manager runs `fc-list` once per machine, the first time it builds its font cache. Both are
# imported here, at collection, so neither process is counted against a fast test by the
# guard below.

REPO = Path(__file__).resolve().parents[1]
AGENTS = Path(__file__).resolve().parent / "agents"


def harness_env(cwd: Path, env: dict | None = None) -> dict:
    """The environment for a harness under test: episodes make their scratch directories in
    ``$TMPDIR``, so it points inside the test's folder, where ``leftover_processes`` looks."""
    scratch = cwd / ".tmp"
    scratch.mkdir(exist_ok=True)
    return {**os.environ, "TMPDIR": str(scratch), **(env or {})}


def harness(*args: str, cwd: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m tracecore_perf ARGS`` in ``cwd``, as a maintainer would type it."""
    return subprocess.run(
        [sys.executable, "-m", "tracecore_perf", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=harness_env(cwd, env),
    )


def published(out: Path, kind: str) -> object:
    (path,) = out.glob(f"perf-{kind}-*.json")
    return json.loads(path.read_text())


def scenario_file(path: Path, rows: list[dict]) -> Path:
    path.write_text(json.dumps(rows))
    return path


def leftover_processes(root: Path) -> list[str]:
    """Live (or stopped) processes working inside ``root``: episode processes, and whatever
    they start, work in scratch directories under ``$TMPDIR``, which ``harness_env`` puts
    there. (Matched by place, not by a marker, so other test sessions on the machine do not
    count.)"""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.pid == os.getpid():
                continue
            cwd = proc.cwd()
            if cwd == str(root) or cwd.startswith(str(root) + os.sep):
                found.append(f"{proc.pid}: {' '.join(proc.info['cmdline'] or [])[:120]} (cwd {cwd})")
        except psutil.Error:
            continue
    return found


class StartedAProcess(AssertionError):
    pass


# --- the session leaves nothing behind -------------------------------------------------------
#
# The session gets a temporary directory of its own ($TMPDIR for everything it starts, pytest's
# tmp_path included), so what a test leaves there is found, whatever else runs on the machine;
# and the checkout's output folder is listed before and after. Either one changed fails the
# session (exit 1), naming what was left.

_session: dict[str, object] = {}


def _checkout_outputs() -> set[str]:
    folder = REPO / "deliverables" / "perf"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def pytest_configure(config: pytest.Config) -> None:
    # A suite started in the background of a script (`... &`, nohup, some CI runners) inherits
    # SIGINT ignored, and an ignored signal stays ignored in every process it starts: the
    # harnesses under test would never see the Ctrl-C the interruption tests send. Python's
    # own handler here means every child starts with the default again.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if hasattr(config, "workerinput"):  # not the controlling process of a distributed run
        return
    private = tempfile.mkdtemp(prefix="tracecore-perf-tests-")
    os.environ["TMPDIR"] = private
    tempfile.tempdir = None  # gettempdir() reads $TMPDIR again
    _session.update(tmp=private, outputs=_checkout_outputs())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    private = _session.get("tmp")
    if not isinstance(private, str):
        return
    left = sorted(name for name in os.listdir(private) if not name.startswith("pytest-of-"))
    written = sorted(_checkout_outputs() - _session["outputs"])  # type: ignore[operator]
    problems = [f"left in the temporary directory: {', '.join(left[:10])}"] if left else []
    problems += [f"written into the checkout's deliverables/perf: {', '.join(written[:10])}"] if written else []
    if problems:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        for problem in problems:
            if reporter is not None:
                reporter.write_line(f"tracecore-perf tests: {problem}", red=True)
        if exitstatus in (0, pytest.ExitCode.OK):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    else:
        shutil.rmtree(private, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    with _no_process_unless_slow(item):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    with _no_process_unless_slow(item):
        yield


@contextlib.contextmanager
def _no_process_unless_slow(item: pytest.Item):
    """A test not marked slow may not start a process (a subprocess, a fork), in its body or
    in any fixture it sets up (module-scoped ones included): that keeps the fast layer fast
    and in-process. Mark the test ``@pytest.mark.slow`` if it must."""
    if item.get_closest_marker("slow") is not None:
        yield
        return

    def refuse(*args, **kwargs):
        raise StartedAProcess(f"{item.nodeid} starts a process but is not marked @pytest.mark.slow")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess.Popen, "_execute_child", refuse)
        patch.setattr(os, "fork", refuse)
        patch.setattr(os, "posix_spawn", refuse)
        yield


@pytest.fixture(scope="session")
def tracecore_release(tmp_path_factory):
    """``tracecore_release("0.9.5")``: the interpreter of an environment holding that TraceCore
    release and its dependencies only, nothing of ours (``None``: the newest release). Built
    from PyPI once per release and session, then shared by every test that asks for it."""
    built: dict[str | None, Path] = {}

    def build(version: str | None = None) -> Path:
        if version in built:
            return built[version]
        root = tmp_path_factory.mktemp(f"tracecore-{version or 'newest'}-env")
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
        site = root / "site"
        spec = "tracecore" if version is None else f"tracecore=={version}"
        install = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-warn-conflicts", "--target", str(site), spec],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert install.returncode == 0, f"cannot install {spec} from PyPI: {install.stderr.strip()[-300:]}"
        python = root / "venv" / "bin" / "python"
        purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        Path(purelib, "tracecore-only.pth").write_text(str(site) + "\n")
        built[version] = python
        return python

    return build


@pytest.fixture
def no_leftovers(tmp_path: Path):
    """Fails the test if any process of its episodes is still alive afterwards."""
    yield tmp_path
    assert leftover_processes(tmp_path) == []


@pytest.fixture(scope="session")
def tool_dist(tmp_path_factory) -> dict[str, Path]:
    """This checkout built as it would be uploaded (``python -m build``: the sdist, then the
    wheel from it), once a session: ``{"wheel": ..., "sdist": ...}``. Built from a copy of the
    package's files, so the checkout gets no build/ or egg-info of it."""
    out = tmp_path_factory.mktemp("tool-dist")
    source = out / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "tracecore_perf", source / "tracecore_perf", ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out / "dist"), str(source)], capture_output=True, text=True, timeout=600
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    (wheel,) = (out / "dist").glob("tracecore_perf-*.whl")
    (sdist,) = (out / "dist").glob("tracecore_perf-*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}
