"""Shared helpers: run the real harness as a subprocess, and check the machine for
processes an episode left behind.

Tests that start real episodes (the harness as a process, a zygote) are marked ``slow``;
``python -m pytest -m "not slow"`` runs the rest, the fast layer, in seconds. The fast layer
is held to it: a test not marked slow that starts a process fails (``_no_process_unless_slow``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
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


def harness(*args: str, cwd: Path, env: dict | None = None, input: str | None = None) -> subprocess.CompletedProcess:
    """``python -m tracecore_perf ARGS`` in ``cwd``, as a maintainer would type it; stopped
    only if it stops making progress (``run_watched``), never at a fixed time."""
    return run_watched(
        [sys.executable, "-m", "tracecore_perf", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        input=input,
        env=harness_env(cwd, env),
        watch=[cwd],
    )


def published(out: Path, kind: str) -> object:
    (path,) = out.glob(f"perf-{kind}-*.json")
    return json.loads(path.read_text())


def scenario_file(path: Path, rows: list[dict]) -> Path:
    path.write_text(json.dumps(rows))
    return path


def interpreter_with_own_copies(folder: Path, *packages) -> Path:
    """A scratch virtual environment whose ``packages`` (imported modules) are copies of its
    own, everything else from this interpreter's site directory (a ``.pth`` file): its
    python, for ``--python``. A test whose hostile agent changes installed code changes the
    copies, which go with the test's folder; the suite's own environment, which tests on other
    pytest-xdist workers are running episodes from, is never touched."""
    venv = folder / "venv"
    run_watched([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = venv.glob("lib/python*/site-packages")
    for package in packages:
        shutil.copytree(Path(package.__file__).parent, site / package.__name__)
    (site / "harness-site.pth").write_text(str(Path(packages[0].__file__).parents[1]) + "\n")
    return venv / "bin" / "python"


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


# --- the watchdog: no wall-clock limit decides a test ----------------------------------------
#
# A process under test is never stopped at a fixed time: a slow or loaded host makes a test
# slower, never red. It is stopped only when it stops making progress: no new byte on its
# stdout or stderr, no change in the files (names, sizes, modification times) of the folders
# it works in, and no CPU time consumed by its process tree, all for QUIET_S seconds in a row.
# Then its whole tree is killed and the test fails with a Stalled naming what it waited for.

QUIET_S = float(os.environ.get("TRACECORE_PERF_TESTS_QUIET_S", "240"))
_WATCH_EVERY_S = 0.5  # how often the progress signature is taken


class Stalled(AssertionError):
    """A process under test made no progress for QUIET_S seconds and was killed."""


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def kill_tree(pid: int) -> None:
    """Kills ``pid`` and every descendant it has now (by pid, nothing else)."""
    members = _tree(pid)
    for member in reversed(members):
        with contextlib.suppress(psutil.Error):
            member.kill()
    psutil.wait_procs(members[1:], timeout=30)  # not the root: its parent reaps it (Popen.wait)


def _files(paths: list[Path], most: int = 20_000) -> frozenset:
    """(path, size, mtime) of what is under ``paths``: walked without recursion and without
    following links (a hostile agent's tree may be thousands of levels deep), up to ``most``
    entries (a tree still growing changes the signature all the same)."""
    seen = set()
    stack = [str(p) for p in paths]
    while stack and len(seen) < most:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    with contextlib.suppress(OSError):
                        info = entry.stat(follow_symlinks=False)
                        seen.add((entry.path, info.st_size, info.st_mtime_ns))
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
        except OSError:  # gone, unreadable, or a path too long to open
            continue
    return frozenset(seen)


class Watchdog:
    """Progress of a process tree: its CPU time, the files under ``watch``, and any counters
    the caller feeds in (bytes read from its pipes). ``quiet_s()`` is how long nothing moved."""

    def __init__(self, pid: int | None, watch=(), quiet_s: float | None = None) -> None:
        self.pid = pid
        self.watch = [Path(p) for p in watch]
        self.quiet_limit = QUIET_S if quiet_s is None else quiet_s
        self.counters: list[int] = [0, 0]
        self._signature: object = None
        self._since = time.monotonic()
        self._taken = 0.0

    def _cpu(self) -> tuple:
        if self.pid is None:
            return ()
        cpu = []
        for member in _tree(self.pid):
            with contextlib.suppress(psutil.Error):
                t = member.cpu_times()
                cpu.append((member.pid, t.user + t.system + t.children_user + t.children_system))
        return tuple(cpu)

    def poll(self) -> float:
        """Takes the signature (at most every _WATCH_EVERY_S); returns seconds without progress."""
        now = time.monotonic()
        if now - self._taken >= _WATCH_EVERY_S:
            self._taken = now
            signature = (tuple(self.counters), self._cpu(), _files(self.watch))
            if signature != self._signature:
                self._signature, self._since = signature, now
        return now - self._since

    def stalled(self) -> bool:
        return self.poll() > self.quiet_limit


def _reader(stream, chunks: list, counters: list[int], slot: int) -> None:
    text = isinstance(stream, io.TextIOBase)
    read = stream.readline if text else getattr(stream, "read1", stream.read)
    while True:
        chunk = read() if text else read(65536)
        if not chunk:
            break
        chunks.append(chunk)
        counters[slot] += len(chunk)
    stream.close()


def communicate(proc: subprocess.Popen, input=None, *, watch=(), quiet_s: float | None = None, what: str = ""):
    """``proc.communicate()`` with the watchdog in place of a timeout: waits as long as the
    process tree makes progress; after QUIET_S seconds of none, kills the tree and raises
    Stalled with the tails of its output."""
    dog = Watchdog(proc.pid, watch, quiet_s)
    chunks: dict[str, list] = {"stdout": [], "stderr": []}
    readers = []
    for slot, name in enumerate(("stdout", "stderr")):
        stream = getattr(proc, name)
        if stream is not None:
            reader = threading.Thread(target=_reader, args=(stream, chunks[name], dog.counters, slot), daemon=True)
            reader.start()
            readers.append(reader)
    if proc.stdin is not None:
        if input:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(input)
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
    stalled_for = None
    while True:
        try:
            proc.wait(timeout=_WATCH_EVERY_S)
            break
        except subprocess.TimeoutExpired:
            if dog.stalled():
                stalled_for = dog.poll()
                kill_tree(proc.pid)
                proc.wait()
                break
    for reader in readers:
        reader.join()
    out, err = (_joined(proc, name, chunks[name]) for name in ("stdout", "stderr"))
    if stalled_for is not None:
        raise Stalled(
            f"{what or ' '.join(map(str, proc.args))[:200]}: no progress for {stalled_for:.0f} s (no output, no file "
            f"change, no CPU time), killed\nstdout tail: {str(out)[-1500:]}\nstderr tail: {str(err)[-3000:]}"
        )
    return out, err


def _joined(proc: subprocess.Popen, name: str, chunks: list):
    if getattr(proc, name) is None:
        return None
    if not chunks:
        return "" if proc.text_mode else b""
    return ("" if isinstance(chunks[0], str) else b"").join(chunks)


def run_watched(args, *, input=None, capture_output: bool = False, check: bool = False, watch=(), quiet_s: float | None = None,
        **popen) -> subprocess.CompletedProcess:  # fmt: skip
    """``subprocess.run`` with the watchdog in place of ``timeout=``."""
    if capture_output:
        popen.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if input is not None:
        popen["stdin"] = subprocess.PIPE
    with subprocess.Popen(args, **popen) as proc:
        out, err = communicate(proc, input, watch=watch, quiet_s=quiet_s)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    if check:
        done.check_returncode()
    return done


def wait_watched(proc: subprocess.Popen, *, watch=(), quiet_s: float | None = None) -> int:
    """``proc.wait()`` with the watchdog in place of a timeout (its pipes, if any, are read)."""
    communicate(proc, watch=watch, quiet_s=quiet_s)
    return proc.returncode


def wait_for(predicate, *, proc: subprocess.Popen | None = None, watch=(), what: str = "the condition",
             every_s: float = 0.05, quiet_s: float | None = None):  # fmt: skip
    """Polls ``predicate`` until it returns something true, and returns that. Fails if ``proc``
    ends first (with its output), or if nothing (``proc``'s tree, the files under ``watch``)
    makes progress for QUIET_S seconds (then ``proc``'s tree is killed)."""
    dog = Watchdog(proc.pid if proc is not None else None, watch, quiet_s)
    while True:
        if proc is not None and proc.poll() is not None:
            found = predicate()
            if found:
                return found
            raise AssertionError(f"{what}: the process ended first (exit {proc.returncode}): {proc.communicate()}")
        found = predicate()
        if found:
            return found
        if dog.stalled():
            if proc is not None:
                kill_tree(proc.pid)
                output = proc.communicate()
            else:
                output = None
            raise Stalled(f"waiting for {what}: no progress for {dog.poll():.0f} s, gave up; output {output}")
        time.sleep(every_s)


def wait_until_gone(find, quiet_s: float | None = None) -> list:
    """Processes dying with their parents take a moment: polls ``find()`` (a list of
    processes) until it is empty, or until its membership has not changed for QUIET_S
    seconds; returns what is left."""
    limit = QUIET_S if quiet_s is None else quiet_s
    left = find()
    members, since = None, time.monotonic()
    while left:
        now_members = sorted(str(p) for p in left)
        if now_members != members:
            members, since = now_members, time.monotonic()
        elif time.monotonic() - since > limit:
            break
        time.sleep(0.05)
        left = find()
    return left


class StartedAProcess(AssertionError):
    pass


# --- the session leaves nothing behind -------------------------------------------------------
#
# The session gets a temporary directory of its own ($TMPDIR for everything it starts, pytest's
# tmp_path included), so what a test leaves there is found, whatever else runs on the machine;
# and the checkout's output folder is listed before and after. Either one changed fails the
# session (exit 1), naming what was left.

_session: dict[str, object] = {}
WORKER_TMP_PREFIX = "gw"  # xdist's worker ids; short: Ray's socket paths under it must fit 107 bytes


def _checkout_outputs() -> set[str]:
    folder = REPO / "deliverables" / "perf"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def pytest_configure(config: pytest.Config) -> None:
    # A suite started in the background of a script (`... &`, nohup, some CI runners) inherits
    # SIGINT ignored, and an ignored signal stays ignored in every process it starts: the
    # harnesses under test would never see the Ctrl-C the interruption tests send. Python's
    # own handler here means every child starts with the default again.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if hasattr(config, "workerinput"):  # a worker of a distributed run (pytest-xdist)
        # A temporary directory of its own inside the session's (what a test there diffs or
        # removes, Ray's session files included, is its own); the controller checks it at the end.
        _session["controller_tmp"] = os.environ["TMPDIR"]
        private = os.path.join(os.environ["TMPDIR"], config.workerinput["workerid"])
        os.makedirs(private, exist_ok=True)
        os.environ["TMPDIR"] = private
        tempfile.tempdir = None
        return
    private = tempfile.mkdtemp(prefix="tracecore-perf-tests-")
    os.environ["TMPDIR"] = private
    tempfile.tempdir = None  # gettempdir() reads $TMPDIR again
    _session.update(tmp=private, outputs=_checkout_outputs())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    private = _session.get("tmp")
    if not isinstance(private, str):
        return
    for name in os.listdir(private):
        if name.startswith(_GROUPS_PREFIX):
            os.unlink(os.path.join(private, name))
    left = sorted(name for name in os.listdir(private) if not name.startswith(("pytest-of-", WORKER_TMP_PREFIX)))
    for worker in sorted(name for name in os.listdir(private) if name.startswith(WORKER_TMP_PREFIX)):
        left += [f"{worker}/{name}" for name in sorted(os.listdir(os.path.join(private, worker)))]
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


# --- pytest-xdist: what must share one worker ------------------------------------------------
#
# The suite runs on pytest-xdist workers (``-n`` in pyproject's addopts): every test has its own
# tmp_path, TMPDIR and episode scratch, and finds its leftovers by its own folder or marker, so
# tests run side by side. A fixture wider than a test (a module's real run that its tests only
# read, a session's built environment, test_matrix_ray's Ray cluster) is set up once per worker
# that asks for it: the tests sharing one go to one worker together, so it is still set up
# once. Each worker writes the group of each test (named after the fixture; an explicit
# ``xdist_group`` mark wins) as it collects; the scheduler below reads them. (xdist's own
# ``--dist loadgroup`` renames node ids to carry the group, which pytest 9.2's nodes no longer
# allow: its groups are silently ignored, so they are not relied on.)
_GROUPS_PREFIX = "xdist-groups-"


def _shared_fixture(item: pytest.Item) -> str | None:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    for name in info.names_closure:
        defs = info.name2fixturedefs.get(name)
        if defs and defs[-1].scope != "function" and name not in ("tmp_path_factory", "worker_id", "testrun_uid"):
            where = "conftest" if defs[-1].baseid in ("", "tests") else item.module.__name__
            callspec = getattr(item, "callspec", None)  # a parametrized fixture: one instance per value
            index = callspec.indices.get(name) if callspec is not None else None
            return f"{where}::{name}" + (f"[{index}]" if index is not None else "")
    return None


def _group(item: pytest.Item) -> str | None:
    marked = item.get_closest_marker("xdist_group")
    if marked is not None:
        return str(marked.args[0] if marked.args else marked.kwargs.get("name", "default"))
    return _shared_fixture(item)


@pytest.hookimpl(trylast=True)  # after deselection: the items that will run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):
        return
    # The `long` tests (minutes each) first, each worker's collection in the same order (xdist
    # requires it): started last, one of them would end the run alone on one worker
    items.sort(key=lambda item: item.get_closest_marker("long") is None)
    groups = {item.nodeid: group for item in items if (group := _group(item)) is not None}
    path = os.path.join(str(_session["controller_tmp"]), f"{_GROUPS_PREFIX}{config.workerinput['workerid']}.json")
    with open(path + ".part", "w") as out:
        json.dump(groups, out)
    os.replace(path + ".part", path)


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist's: without it, never called
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Load scheduling (any free worker takes the next unit), a unit being a test or a group."""
    from xdist.scheduler import LoadScopeScheduling

    folder = str(_session["tmp"])

    class SharedFixtureScheduling(LoadScopeScheduling):
        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:
                self.groups = {}
                for name in sorted(os.listdir(folder)):
                    if name.startswith(_GROUPS_PREFIX) and name.endswith(".json"):
                        with open(os.path.join(folder, name)) as written:
                            self.groups.update(json.load(written))
            group = self.groups.get(nodeid)
            return f"group:{group}" if group is not None else nodeid

    # Units in collection order (the `long` tests first, above), not xdist's default of the
    # largest group first, which would leave a long test that is a unit of its own to the end
    config.option.loadscopereorder = False
    return SharedFixtureScheduling(config, log)


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
        install = run_watched(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-warn-conflicts", "--target", str(site), spec],
            capture_output=True, text=True, watch=[root],
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
    built = run_watched(
        [sys.executable, "-m", "build", "--outdir", str(out / "dist"), str(source)], capture_output=True, text=True, watch=[out]
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    (wheel,) = (out / "dist").glob("tracecore_perf-*.whl")
    (sdist,) = (out / "dist").glob("tracecore_perf-*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}
