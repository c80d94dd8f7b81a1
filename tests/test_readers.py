"""Bad input read back loses nothing: a damaged, truncated or wrong-typed published
file, a history database with a damaged page, a path argument the system cannot take, an
edited manifest, a second attempt at a run being run: each is one line naming the file (or the
argument, or the field, or the process) and exit 2, never a traceback (exit 70), and nothing
is written. Real files throughout: a published run copied from deliverables/, a store written
by ``history add`` and then damaged on disk, a real run holding its lock."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from tracecore_perf.cli import main
from tracecore_perf.models import FORMAT_VERSION
from tracecore_perf.published import decode_manifest

from conftest import AGENTS, REPO, communicate, harness, harness_env, published, scenario_file, wait_for, wait_watched

BASELINE = REPO / "deliverables" / "perf" / "baseline-slice"


def refused(capsys, argv: list[str]) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("tracecore-perf: error: "), (code, captured.err)
    return lines[0]


def copy_run(folder: Path) -> Path:
    folder.mkdir()
    for path in BASELINE.glob("perf-*.json"):
        shutil.copy(path, folder)
    return folder


def published_file(folder: Path, kind: str) -> Path:
    (path,) = folder.glob(f"perf-{kind}-*.json")
    return path


# --- published files ---------------------------------------------------------------------


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _wrong_type(path: Path) -> None:
    data = json.loads(path.read_text())
    if isinstance(data, list):
        data[0] = "a row"  # an element of the wrong type
    else:
        data["episodes" if "episodes" in data else "workers"] = "many"
    path.write_text(json.dumps(data))


def _disagree(path: Path) -> None:
    path.write_text("[]")  # valid JSON of the right type: a series cut to nothing, or another run's


DAMAGE = {"truncated": _truncate, "wrong-typed": _wrong_type, "empty": lambda p: p.write_bytes(b"")}
COMMANDS = {
    "check": lambda run: ["check", str(run)],
    "compare": lambda run: ["compare", str(BASELINE), str(run)],
    "export": lambda run: ["export", str(run), "--format", "bmf"],
    "report": lambda run: ["report", str(run)],
    "history add": lambda run: ["history", "add", str(run), "--db", str(run.parent / "h.db")],
}
# What each command reads: report reads metrics (the run report's table); check and history
# add read samples (trends, the workers' memory).
READS = {
    "check": ("manifest", "summary", "series", "samples"),
    "compare": ("manifest", "summary", "series"),
    "export": ("manifest", "summary", "series"),
    "report": ("manifest", "summary", "series", "samples", "metrics"),
    "history add": ("manifest", "summary", "series", "samples"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_damaged_published_file_is_one_line_naming_it(tmp_path: Path, capsys, command: str, damage: str):
    for kind in READS[command]:
        run = copy_run(tmp_path / f"{kind}")
        target = published_file(run, kind)
        DAMAGE[damage](target)
        before = sorted(p.name for p in run.iterdir())
        line = refused(capsys, COMMANDS[command](run))
        assert target.name in line, (kind, line)
        assert sorted(p.name for p in run.iterdir()) == before  # nothing written: no report, no database


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_series_that_disagrees_with_its_summary_is_refused(tmp_path: Path, capsys, command: str):
    run = copy_run(tmp_path / "run")
    _disagree(published_file(run, "series"))
    line = refused(capsys, COMMANDS[command](run))
    assert "holds 0 rows, its summary says 24 episodes" in line


# --- the history store -------------------------------------------------------------------


def damaged_store(tmp_path: Path, capsys) -> Path:
    """A store written by ``history add``, then one page in its middle overwritten: the root
    page of the per-(agent, task) figures, as a torn write or a bad sector leaves it."""
    db = tmp_path / "history.db"
    assert main(["history", "add", str(BASELINE), "--db", str(db)]) == 0
    capsys.readouterr()
    with sqlite3.connect(db) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'group_figures'").fetchone()
    conn.close()
    pages = db.stat().st_size // page_size
    assert 1 < root < pages  # a page in the middle, not the header
    with db.open("r+b") as fh:
        fh.seek((root - 1) * page_size + 8)
        fh.write(b"\xa5" * (page_size - 16))
    check = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
    assert check.execute("PRAGMA quick_check").fetchone()[0] != "ok"  # damaged for real
    check.close()
    return db


@pytest.mark.parametrize("action", ["add", "show", "check", "report", "accept"])
def test_a_damaged_history_database_is_refused_and_never_written(tmp_path: Path, capsys, action: str):
    db = damaged_store(tmp_path, capsys)
    before = db.read_bytes()
    argv = {
        "add": ["history", "add", str(BASELINE.parent / "baseline"), "--db", str(db)],
        "show": ["history", "show", "--db", str(db)],
        "check": ["history", "check", "--db", str(db)],
        "report": ["history", "report", "--db", str(db), "--output", str(tmp_path / "h.html")],
        "accept": ["history", "accept", "20261125T184431Z", "--db", str(db)],
    }[action]
    line = refused(capsys, argv)
    assert f"{db}: the history database is damaged" in line and "move it aside" in line, line
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.db"]


# --- path arguments ----------------------------------------------------------------------

NOT_UTF8 = os.fsdecode(b"run-\xff\xfe")
LONG = "x" * 256

PATH_CASES = {
    "check RUN": (["check", "{p}"], "RUN:"),
    "check --baseline": (["check", "x", "--baseline", "{p}"], "--baseline:"),
    "compare BASELINE": (["compare", "{p}", "x"], "BASELINE:"),
    "compare CURRENT": (["compare", "x", "{p}"], "CURRENT:"),
    "compare --search-dir": (["compare", "x", "y", "--search-dir", "{p}"], "--search-dir:"),
    "export RUN": (["export", "{p}"], "RUN:"),
    "export --output": (["export", "x", "--output", "{p}"], "--output:"),
    "report RUN": (["report", "{p}"], "RUN:"),
    "report --output-dir": (["report", "x", "--output-dir", "{p}"], "--output-dir:"),
    "history add RUN": (["history", "add", "{p}"], "RUN:"),
    "history show --db": (["history", "show", "--db", "{p}"], "--db:"),
    "history report --output": (["history", "report", "--output", "{p}"], "--output:"),
    "run --output-dir": (["--output-dir", "{p}"], "--output-dir:"),
    "run --scenario": (["--scenario", "{p}"], "--scenario:"),
    "run --resume": (["--resume", "{p}"], "--resume:"),
    "run --history": (["--history", "{p}"], "--history:"),
}


@pytest.mark.parametrize("kind", ["not UTF-8", "256-byte component"])
@pytest.mark.parametrize("case", list(PATH_CASES))
def test_a_path_the_system_cannot_take_is_one_line_naming_the_argument(tmp_path: Path, capsys, monkeypatch, case: str, kind: str):
    monkeypatch.chdir(tmp_path)
    argv, name = PATH_CASES[case]
    bad = str(tmp_path / (NOT_UTF8 if kind == "not UTF-8" else LONG))
    line = refused(capsys, [a.replace("{p}", bad) for a in argv])
    assert line.startswith(f"tracecore-perf: error: {name} ")
    assert ("not valid UTF-8" if kind == "not UTF-8" else "a path component of 256 bytes") in line
    assert list(tmp_path.iterdir()) == []


# --- --resume: the manifest held to the flags' bounds ------------------------------------


def interrupted_run(tmp_path: Path, rows: int = 24, nested: dict | None = None, **manifest_changes) -> Path:
    """A run directory as an interrupted run leaves it, made from the committed published run:
    its manifest (``manifest_changes`` edited in) and ``rows`` of its rows. The committed run is
    of the flat format (each setting at the manifest's top level); ``nested``: the manifest as
    this harness writes it instead, these settings edited into its ``settings``."""
    manifest = json.loads(published_file(BASELINE, "manifest").read_text())
    if nested is not None:
        manifest = json.loads(msgspec.json.encode(decode_manifest(json.dumps(manifest).encode())))
        manifest["format_version"] = FORMAT_VERSION
        manifest["settings"].update(nested)
    run_dir = tmp_path / "out" / f"run-{manifest['stamp']}"
    (run_dir / "logs").mkdir(parents=True)
    (run_dir / ".agent_bench" / "runs").mkdir(parents=True)
    manifest.update(status="interrupted", run_dir=str(run_dir), **manifest_changes)
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    series = json.loads(published_file(BASELINE, "series").read_text())[:rows]
    (run_dir / "series.jsonl").write_text("".join(json.dumps(row) + "\n" for row in series))
    return run_dir


# each case: (the setting, the value edited in, what the one line says); the flat format keeps
# sample_interval as sample_interval_s
MANIFEST_CASES = {
    "zero workers": ("workers", 0, "settings.workers 0: Expected `int` >= 1"),
    "negative workers": ("workers", -4, "settings.workers -4: Expected `int` >= 1"),
    "zero episodes": ("episodes", 0, "settings.episodes 0: Expected `int` >= 1"),
    "zero timeout": ("timeout", 0, "settings.timeout 0.0: Expected `float` >= 0.01"),
    "negative sample interval": ("sample_interval", -1, "settings.sample_interval -1.0: Expected `float` > 0"),
    "tiny memory limit": ("memory_limit", 1, "settings.memory_limit 1: Expected `int` >="),
    "episodes below the rows done": ("episodes", 5, "settings.episodes 5 is fewer than the 24 rows the run already has"),
    "more workers than the host holds": ("workers", 10**6, "--workers 1000000 is more than this host can hold"),
}
FLAT_NAMES = {"sample_interval": "sample_interval_s"}


@pytest.mark.parametrize("layout", ["flat", "nested"])
@pytest.mark.parametrize("case", list(MANIFEST_CASES))
def test_resume_holds_an_edited_manifest_to_the_flags_bounds(tmp_path: Path, capsys, case: str, layout: str):
    name, value, says = MANIFEST_CASES[case]
    if layout == "flat":
        run_dir = interrupted_run(tmp_path, **{FLAT_NAMES.get(name, name): value})
    else:
        run_dir = interrupted_run(tmp_path, nested={name: value})
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    line = refused(capsys, ["--resume", str(run_dir)])
    assert says in line, line
    if "host" not in says:
        assert f"{run_dir / 'manifest.json'}:" in line
    after = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file() and p.name != "run.lock"}
    assert after == before  # the manifest and the rows as they were


def test_resume_refuses_a_run_directory_of_a_newer_format(tmp_path: Path, capsys):
    run_dir = interrupted_run(tmp_path, nested={}, format_version=FORMAT_VERSION + 1)
    line = refused(capsys, ["--resume", str(run_dir)])
    assert f"{run_dir / 'manifest.json'}: format version {FORMAT_VERSION + 1}, newer than this tracecore-perf reads" in line


def test_a_lock_planted_as_a_link_is_refused_and_its_target_untouched(tmp_path: Path, capsys):
    run_dir = interrupted_run(tmp_path)
    target = tmp_path / "precious"
    target.write_text("kept")
    (run_dir / "run.lock").symlink_to(target)
    assert "a link stands at its name" in refused(capsys, ["--resume", str(run_dir)])
    assert target.read_text() == "kept"


def test_a_planted_lock_file_held_by_nobody_does_not_stop_a_resume(tmp_path: Path, capsys):
    """What the file says is not who holds the lock: a file claiming pid 1 is taken over, and
    the resume goes on to its next check."""
    run_dir = interrupted_run(tmp_path, workers=0)
    (run_dir / "run.lock").write_text("1 resume\n")
    assert "workers 0" in refused(capsys, ["--resume", str(run_dir)])


# --- one attempt at a time ---------------------------------------------------------------


def lock_taken(path: Path) -> bool:
    """Whether some process holds the flock on ``path`` (a non-blocking attempt of our own)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def wait_for_lock(pattern: str, root: Path, proc: subprocess.Popen) -> Path:
    def taken() -> Path | None:
        assert proc.poll() is None, proc.communicate()
        for lock in root.glob(pattern):
            if lock_taken(lock):
                return lock.parent
        return None

    return wait_for(taken, proc=proc, watch=[root], what=f"a lock at {pattern}")


def popen(work: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tracecore_perf", *args],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=harness_env(work),
    )


@pytest.mark.slow  # real runs, held long by an agent that never returns
def test_a_second_attempt_at_a_run_is_refused_while_one_holds_it(tmp_path: Path):
    rows = [{"agent": str(AGENTS / "hanging_agent.py"), "task_ref": "filesystem_hidden_config@1", "seed": s} for s in (1, 2)]
    scenario = scenario_file(tmp_path / "s.json", rows)
    out = tmp_path / "out"
    first = popen(tmp_path, "--scenario", str(scenario), "--episodes", "2", "--workers", "1", "--timeout", "5",
                  "--output-dir", str(out))  # fmt: skip
    run_dir = wait_for_lock("run-*/run.lock", out, first)
    # a resume while the run itself is still running
    done = harness("--resume", str(run_dir), cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert f"this run is being run by pid {first.pid}" in lines[0]
    first.send_signal(signal.SIGINT)
    assert wait_watched(first, watch=[tmp_path]) == 130
    rows_before = (run_dir / "series.jsonl").read_bytes() if (run_dir / "series.jsonl").exists() else b""

    resuming = popen(tmp_path, "--resume", str(run_dir), "--json")
    wait_for_lock("run.lock", run_dir, resuming)
    done = harness("--resume", str(run_dir), cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert f"this run is being resumed by pid {resuming.pid}" in lines[0]
    assert (run_dir / "series.jsonl").read_bytes()[: len(rows_before)] == rows_before  # the refused one touched nothing

    stdout, stderr = communicate(resuming, watch=[tmp_path])
    assert resuming.returncode == 1, stderr  # the hanging episodes time out: failed rows, not lost ones
    summary = json.loads(stdout)["summary"]
    assert summary["episodes"] == 2 and summary["status"] == "resumed"
    assert summary["integrity"]["clean"], summary["integrity"]
    indexes = [json.loads(line)["episode_index"] for line in (run_dir / "series.jsonl").read_text().splitlines()]
    assert sorted(indexes) == [0, 1]  # every episode once


def _interrupted_run(work: Path, episodes: int = 2, more: int = 1) -> Path:
    """A real run of ``episodes``, then its manifest asking for ``more`` and its publication
    undone: a run --resume has an episode left to run."""
    done = harness("--episodes", str(episodes), "--workers", "2", "--output-dir", "out", "--no-progress", cwd=work)
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = (work / "out").glob("run-*")
    stored = json.loads((run_dir / "manifest.json").read_text())
    stored["settings"]["episodes"], stored["status"] = episodes + more, "interrupted"
    (run_dir / "manifest.json").write_text(json.dumps(stored))
    for done_file in (work / "out").glob("perf-*"):
        done_file.unlink()
    return run_dir


@pytest.mark.slow
def test_resume_through_a_link_or_a_relative_path_takes_the_run_where_it_is(tmp_path: Path):
    run_dir = _interrupted_run(tmp_path)
    link = tmp_path / "link-to-run"
    link.symlink_to(run_dir)
    resumed = harness("--resume", "link-to-run", "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads(resumed.stdout)["summary"]
    assert summary["episodes"] == 3 and summary["failure_count"] == 0 and summary["integrity"]["clean"]
    assert len(list((tmp_path / "out").glob("perf-summary-*.json"))) == 1  # published beside the run itself
    assert not list(tmp_path.glob("perf-*"))  # not beside the link


def test_ctrl_c_as_a_resume_reads_the_run_gives_its_resume_line(tmp_path: Path, capsys, monkeypatch):
    """The window before the attempt begins (the run locked, its manifest and rows being
    read): the run is as it was, and the last line is still the command that finishes it.
    (The slow test below lands the signal wherever it lands; this one lands it there.)"""
    from tracecore_perf.run import harness as run_harness

    run_dir = tmp_path / "run-20260101T000000Z"
    run_dir.mkdir()
    (run_dir / "manifest.json").write_text("{}")

    def interrupted(_run_dir):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_harness, "_take_run", interrupted)
    assert main(["--resume", str(run_dir), "--no-progress"]) == 130
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("tracecore-perf: interrupted; to finish the run: ") and f"--resume {run_dir}" in last, last
    assert sorted(p.name for p in run_dir.iterdir()) == ["manifest.json", "run.lock"]


@pytest.mark.slow
def test_ctrl_c_while_a_resume_begins_gives_its_resume_line_not_already_published(tmp_path: Path):
    """Interrupted as soon as it holds the run (validating, starting its zygote): the run is
    not published, and the line says how to finish it."""
    run_dir = _interrupted_run(tmp_path)
    resuming = popen(tmp_path, "--resume", str(run_dir), "--no-progress")
    wait_for_lock("run.lock", run_dir, resuming)
    resuming.send_signal(signal.SIGINT)
    _, err = communicate(resuming, watch=[tmp_path])
    last = err.strip().splitlines()[-1]
    assert "already published" not in err, err[-2000:]
    if resuming.returncode == 0:  # it finished the one episode before the signal landed: nothing to say
        return
    assert resuming.returncode == 130, err[-2000:]
    assert last.startswith("tracecore-perf: interrupted; to finish the run: ") and f"--resume {run_dir}" in last, err
    finished = harness("--resume", str(run_dir), "--json", cwd=tmp_path)
    assert finished.returncode == 0 and json.loads(finished.stdout)["summary"]["episodes"] == 3, finished.stderr[-2000:]


@pytest.mark.slow
def test_a_relative_python_is_taken_from_the_working_directory(tmp_path: Path):
    python = os.path.relpath(sys.executable, tmp_path)
    done = harness("--python", python, "--episodes", "2", "--workers", "2", "--output-dir", "out", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["summary"]["failure_count"] == 0
    manifest = published(tmp_path / "out", "manifest")
    assert os.path.isabs(manifest["interpreter"]["executable"])
    assert manifest["settings"]["python"] == os.path.abspath(sys.executable)  # what --resume runs: from anywhere
