"""One guard for every output path a user names (``files.output_refusal``): `--junit-file` of
every command that has it, `export --output`, `report --output-dir`, `history report --output`,
the history database `history add`/`accept` and `run --history` write, `$GITHUB_STEP_SUMMARY`,
and the folder runs are made in. Pointed at a published run's series, summary or manifest, a
file inside a run directory, the history store, a symbolic link, a device, a FIFO or a folder,
each is refused: exit 2, one line naming the path and why, before any work, and the target is
byte for byte what it was. A file the tool made for that sink (an earlier JUnit report, export
or history page) is written again.

Then `compare` of a tainted run (refused; `--allow-tainted` compares it with a warning in every
format), and the runtime check that never calls two runs of one Python different because one
was published before `python_build` existed.

The fast tests use copies of the committed slice baseline (a real published run) and a run
directory laid out as a run leaves it; the slow ones make real runs (a clean one, a tainted one,
the slice CI compares with the committed baseline)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import msgspec
import pytest

from tracecore_perf.cli import main

from conftest import AGENTS, REPO, harness, scenario_file

SLICE = REPO / "deliverables" / "perf" / "baseline-slice"
COUNTED = REPO / "deliverables" / "perf" / "baseline-slice-instructions"
STAMP = "20261125T184431Z"
TASK = "filesystem_hidden_config@1"
HEALTHY = {"agent": "agents/toy_agent.py", "task_ref": TASK, "seed": 1}


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def fingerprint(path: Path) -> tuple:
    """What must not change at ``path``: its kind, and a regular file's bytes (a link: where it
    points and the bytes there)."""
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        return ("link", os.readlink(path), fingerprint(path.resolve()))
    if stat.S_ISREG(info.st_mode):
        return ("file", hashlib.sha256(path.read_bytes()).hexdigest(), info.st_nlink)
    return (stat.S_IFMT(info.st_mode), info.st_rdev)


def assert_refused(capsys, argv: list[str], target: Path) -> str:
    before = fingerprint(target)
    code, _, err = cli(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("tracecore-perf: error: "), err
    assert str(target) in lines[0], lines[0]
    assert fingerprint(target) == before
    return lines[0]


# --- the places: a published run, its run directory, a history store -------------------------


class Place:
    """A folder holding a published run (``out``) with its run directory, and a history store."""

    def __init__(self, root: Path, out: Path, stamp: str, db: Path) -> None:
        self.root, self.out, self.stamp, self.db = root, out, stamp, db

    def published(self, kind: str) -> Path:
        return self.out / f"perf-{kind}-{self.stamp}.json"

    @property
    def run_dir(self) -> Path:
        return self.out / f"run-{self.stamp}"


def make_place(root: Path, capsys, source: Path = SLICE, stamp: str = STAMP) -> Place:
    """The committed slice baseline copied, with a run directory laid out as a run leaves it
    (its manifest and series), and the run added to a new history store."""
    out = root / "out"
    shutil.copytree(source, out)
    run_dir = out / f"run-{stamp}"
    if not run_dir.is_dir():
        run_dir.mkdir()
        shutil.copy(out / f"perf-manifest-{stamp}.json", run_dir / "manifest.json")
        rows = json.loads((out / f"perf-series-{stamp}.json").read_text())
        (run_dir / "series.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    db = root / "history.sqlite"
    code, _, err = cli(capsys, "history", "add", str(out), "--db", str(db))
    assert code == 0, err
    return Place(root, out, stamp, db)


@pytest.fixture
def place(tmp_path: Path, capsys, monkeypatch) -> Place:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    return make_place(tmp_path, capsys)


def targets(place: Place) -> dict[str, Path]:
    """Everything no output may be written to, made for real."""
    root = place.root
    link = root / "link.xml"
    if not link.is_symlink():
        link.symlink_to(place.published("series"))
    fifo = root / "fifo.xml"
    if not fifo.exists():
        os.mkfifo(fifo)
    folder = root / "a-folder"
    folder.mkdir(exist_ok=True)
    return {
        "series": place.published("series"),
        "summary": place.published("summary"),
        "manifest": place.published("manifest"),
        "run-dir series": place.run_dir / "series.jsonl",
        "run-dir manifest": place.run_dir / "manifest.json",
        "history store": place.db,
        "symlink": link,
        "device": Path("/dev/null"),
        "fifo": fifo,
        "folder": folder,
    }


# Every sink of a file a user names: argv with {run}, {db} and {target} filled in, and the
# environment variable it is named by (the step summary) instead of a flag.
SINKS: dict[str, tuple[list[str], str | None]] = {
    "check --junit-file": (["check", "{run}", "--format", "junit", "--junit-file", "{target}"], None),
    "compare --junit-file": (["compare", "{run}", "{run}", "--format", "junit", "--junit-file", "{target}"], None),
    "ab --junit-file": (
        ["ab", "--python", sys.executable, "--python", sys.executable, "--format", "junit", "--junit-file", "{target}"],
        None,
    ),
    "continuous --junit-file": (["continuous", "HEAD~1", "HEAD", "--format", "junit", "--junit-file", "{target}"], None),
    "history check --junit-file": (["history", "check", "--db", "{db}", "--format", "junit", "--junit-file", "{target}"], None),
    "export --output": (["export", "{run}", "--output", "{target}"], None),
    "history report --output": (["history", "report", "--db", "{db}", "--output", "{target}"], None),
    "history add --db": (["history", "add", "{run}", "--db", "{target}"], None),
    "history accept --db": (["history", "accept", STAMP, "--db", "{target}"], None),
    "run --history": (["--episodes", "1", "--output-dir", "{root}/runs", "--history", "{target}"], None),
    "check GITHUB_STEP_SUMMARY": (["check", "{run}", "--format", "github"], "GITHUB_STEP_SUMMARY"),
    "compare GITHUB_STEP_SUMMARY": (["compare", "{run}", "{run}", "--format", "github"], "GITHUB_STEP_SUMMARY"),
}
DATABASE_SINKS = {"history add --db", "history accept --db", "run --history"}  # the store is what they write


def argv_for(sink: str, place: Place, target: Path, monkeypatch) -> list[str]:
    argv, env = SINKS[sink]
    values = {"run": str(place.out), "db": str(place.db), "target": str(target), "root": str(place.root)}
    if env is not None:
        monkeypatch.setenv(env, str(target))
    return [a.format(**values) for a in argv]


@pytest.mark.parametrize("sink", list(SINKS))
def test_no_sink_writes_over_a_run_the_store_a_link_a_device_or_a_fifo(place: Place, sink: str, capsys, monkeypatch):
    for name, target in targets(place).items():
        if sink in DATABASE_SINKS and name == "history store":
            continue  # the database those commands write: held to the store's own checks
        line = assert_refused(capsys, argv_for(sink, place, target, monkeypatch), target)
        assert "tainted" not in line, line
    assert not (place.root / "runs").exists()  # `run --history`: refused before the run began


def test_each_refusal_says_why(place: Place, capsys, monkeypatch):
    said = {
        name: assert_refused(capsys, ["check", str(place.out), "--format", "junit", "--junit-file", str(t)], t)
        for name, t in targets(place).items()
    }
    for name in ("series", "summary", "manifest"):
        assert "is named as a published run's file" in said[name]
    for name in ("run-dir series", "run-dir manifest"):
        assert f"is inside the run directory {place.run_dir.resolve()}" in said[name]
    assert "is an SQLite database" in said["history store"]
    assert "is a symbolic link: nothing is written through a link" in said["symlink"]
    assert "is a device file, not a regular file" in said["device"]
    assert "is a FIFO, not a regular file" in said["fifo"]
    assert "--junit-file must be a file, not a folder" in said["folder"]


def test_a_hard_link_to_a_run_file_and_a_folder_linked_into_a_run_are_refused(place: Place, capsys):
    hard = place.root / "evidence.xml"
    os.link(place.published("series"), hard)
    line = assert_refused(capsys, ["check", str(place.out), "--format", "junit", "--junit-file", str(hard)], hard)
    assert "has 2 names (hard links)" in line
    into = place.root / "into-run"
    into.symlink_to(place.run_dir)
    new = into / "report.xml"
    code, _, err = cli(capsys, "check", str(place.out), "--format", "junit", "--junit-file", str(new))
    assert code == 2 and "is inside the run directory" in err and not new.exists(), err


def test_a_file_the_tool_did_not_make_for_that_sink_is_not_replaced(place: Place, capsys):
    cases = {
        ("check", "--junit-file"): "not a JUnit report",
        ("export", "--output"): "not an export of this tool",
        ("history report", "--output"): "not an HTML page of this tool",
    }
    notes = place.root / "notes.txt"
    notes.write_text("<html>my notes</html>\n")
    for (command, flag), says in cases.items():
        if command == "history report":
            argv = ["history", "report", "--db", str(place.db), "--output", str(notes)]
        elif command == "export":
            argv = ["export", str(place.out), "--output", str(notes)]
        else:
            argv = ["check", str(place.out), "--format", "junit", "--junit-file", str(notes)]
        line = assert_refused(capsys, argv, notes)
        assert f"{flag} {notes} is an existing file that is {says}" in line, line


def test_the_same_output_again_is_written_again(place: Place, capsys):
    """A second `--junit-file` (check, compare, history check) to the JUnit file of the first,
    an export over the earlier export, a history page over the earlier page, an empty file
    (mktemp's): each written, the file then holding the new document."""
    junit, export, page = place.root / "r.xml", place.root / "bmf.json", place.root / "history.html"
    for argv in (
        ["check", str(place.out), "--format", "junit", "--junit-file", str(junit)],
        ["compare", str(place.out), str(place.out), "--format", "junit", "--junit-file", str(junit)],
        ["history", "check", "--db", str(place.db), "--format", "junit", "--junit-file", str(junit)],
        ["export", str(place.out), "--output", str(export)],
        ["export", str(place.out), "--format", "github-action-benchmark", "--output", str(export)],
        ["history", "report", "--db", str(place.db), "--output", str(page)],
    ):
        for _ in range(2):
            code, _, err = cli(capsys, *argv)
            assert code in (0, 1), err
    assert ET.parse(junit).getroot().tag == "testsuites"
    assert isinstance(json.loads(export.read_text()), list)  # the second format's
    assert "tracecore-perf history" in page.read_text()
    empty = place.root / "empty.xml"
    empty.touch()
    code, _, err = cli(capsys, "check", str(place.out), "--format", "junit", "--junit-file", str(empty))
    assert code in (0, 1) and ET.parse(empty).getroot().tag == "testsuites", err


def test_the_step_summary_is_appended_to_but_never_through_a_link(place: Place, capsys, monkeypatch):
    summary = place.root / "step_summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, _, err = cli(capsys, "check", str(place.out), "--format", "github")
    assert code in (0, 1), err
    assert summary.read_text().startswith("# earlier step\n") and len(summary.read_text()) > 20
    link = place.root / "summary-link.md"
    link.symlink_to(place.published("summary"))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(link))
    line = assert_refused(capsys, ["check", str(place.out), "--format", "github"], link)
    assert line.startswith(f"tracecore-perf: error: GITHUB_STEP_SUMMARY {link} is a symbolic link"), line


def test_report_output_dir_is_an_existing_folder_outside_any_run(place: Place, capsys):
    linked = place.root / "linked-folder"
    linked.symlink_to(place.out)
    cases = {
        place.run_dir: "is inside the run directory",
        linked: "is a symbolic link",
        place.published("series"): "must be an existing folder",
    }
    for target, says in cases.items():
        before = sorted(p.name for p in place.run_dir.iterdir())
        line = assert_refused(capsys, ["report", str(place.out), "--output-dir", str(target)], target)
        assert says in line, line
        assert sorted(p.name for p in place.run_dir.iterdir()) == before


def test_runs_are_never_made_inside_another_runs_directory(place: Place, capsys):
    inside = place.run_dir / "more"
    for argv in (
        ["--episodes", "1", "--output-dir", str(inside)],
        ["ab", "--python", sys.executable, "--python", sys.executable, "--output-dir", str(inside)],
        ["matrix", str(place.root / "m.toml"), "--output-dir", str(inside)],
    ):
        code, _, err = cli(capsys, *argv)
        assert code == 2 and "is inside the run directory" in err, err
        assert not inside.exists()


# --- compare of a tainted run -------------------------------------------------------------------


def taint(place: Place) -> None:
    """The published summary edited as a tampered run's is published: status tainted, the
    integrity block naming the problem."""
    path = place.published("summary")
    summary = json.loads(path.read_text())
    summary["status"] = "tainted"
    summary["integrity"].update(clean=False, problems=["series.jsonl: 1 line the harness did not write"])
    path.write_text(json.dumps(summary, indent=2))


def test_compare_refuses_a_tainted_run_naming_it(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    clean = make_place(tmp_path / "clean", capsys)
    tainted = make_place(tmp_path / "tainted", capsys)
    taint(tainted)
    for baseline, current, which in ((clean, tainted, "current run"), (tainted, clean, "baseline")):
        code, out, err = cli(capsys, "compare", str(baseline.out), str(current.out), "--format", "json")
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and out == "", err
        assert f"the {which} {STAMP} is tainted (its evidence was tampered with: series.jsonl" in lines[0], lines[0]
        assert "--allow-tainted" in lines[0]


@pytest.mark.parametrize("fmt", ["text", "json", "markdown", "github", "junit"])
def test_allow_tainted_compares_with_a_loud_warning_in_every_format(tmp_path: Path, capsys, monkeypatch, fmt: str):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    clean = make_place(tmp_path / "clean", capsys)
    tainted = make_place(tmp_path / "tainted", capsys)
    taint(tainted)
    junit = tmp_path / "c.xml"
    where = ["--junit-file", str(junit)] if fmt == "junit" else []
    code, out, err = cli(capsys, "compare", str(clean.out), str(tainted.out), "--allow-tainted", "--format", fmt, *where)
    assert code == 0, err
    assert f"WARNING: TAINTED RUN: the current run {STAMP} is tainted" in err  # stderr, whatever the format
    shown = junit.read_text() if fmt == "junit" else out
    assert "TAINTED RUN" in shown, shown
    if fmt == "json":
        assert {"code": "tainted_run"}.items() <= json.loads(out)["notices"][0].items()


# --- runtime differences: a field one run lacks is no difference -------------------------------


def _manifest(folder: Path):
    from tracecore_perf.published import decode_manifest

    return decode_manifest(next(folder.glob("perf-manifest-*.json")).read_bytes())


def test_a_run_published_before_python_build_is_held_by_version_alone():
    from tracecore_perf.verdicts.compare import runtime_differences

    old, new = _manifest(SLICE), _manifest(COUNTED)
    assert old.interpreter.python_build == "" and new.interpreter.python_build  # the committed baselines
    assert old.interpreter.python_version == new.interpreter.python_version
    assert runtime_differences(old, new) == runtime_differences(new, old) == []
    other = msgspec.structs.replace(new.interpreter, python_version="3.12.1", python_build="3.12.1 (main) [GCC 13]")
    assert runtime_differences(old, msgspec.structs.replace(new, interpreter=other)) == ["Python 3.11.7 vs 3.12.1"]
    rebuilt = msgspec.structs.replace(new.interpreter, python_build=new.interpreter.python_build.replace("May", "Jun"))
    (moved,) = runtime_differences(new, msgspec.structs.replace(new, interpreter=rebuilt))
    left, right = moved.removeprefix("Python ").split(" vs ")
    assert left != right and "May" in left and "Jun" in right
    lacking = msgspec.structs.replace(new.interpreter, tracecore_version="")
    assert runtime_differences(new, msgspec.structs.replace(new, interpreter=lacking)) == []


def test_compare_with_the_committed_slice_baseline_shows_no_equal_values_as_a_difference(tmp_path, capsys, monkeypatch):
    """The committed slice baseline (published before python_build) against a run that records
    it, on the same Python and TraceCore: no RUNTIME MISMATCH."""
    monkeypatch.chdir(tmp_path)
    newer = make_place(tmp_path / "newer", capsys)
    path = newer.published("manifest")
    manifest = json.loads(path.read_text())
    manifest["interpreter"]["python_build"] = "3.11.7 (main, May 9 2026, 07:35:25) [GCC 12.2.0]"
    path.write_text(json.dumps(manifest, indent=2))
    code, out, err = cli(capsys, "compare", str(SLICE), str(newer.out), "--format", "json")
    assert code == 0, err
    assert "RUNTIME MISMATCH" not in err and "runtime_mismatch" not in out
    assert_no_equal_values_shown(err)


def assert_no_equal_values_shown(text: str) -> None:
    for a, b in re.findall(
        r"(?:Python|TraceCore|Valgrind|hash seed) (\S+(?: \([^)]*\) \[[^\]]*\])?) vs (\S+(?: \([^)]*\) \[[^\]]*\])?)", text
    ):
        assert a != b, text


# --- with real runs ------------------------------------------------------------------------------


def real_run(work: Path, name: str, rows: list[dict], *extra: str, codes=(0, 1)) -> Path:
    """A real run of ``rows``, one episode each, one worker; the tampering fixture agents find
    its run directory by HOSTILE_RUN_GLOB (as test_containment.py runs them)."""
    out = work / name
    scenario = scenario_file(work / f"{name}.json", rows)
    done = harness(
        "--scenario", str(scenario), "--episodes", str(len(rows)), "--workers", "1", "--no-progress",
        "--output-dir", str(out), *extra, cwd=work,
        env={"HOSTILE_RUN_GLOB": str(out / "run-*"), "HOSTILE_MARKER": "tracecore-perf-containment-fixture",
             "HOSTILE_SPARE_PID": str(os.getpid())},
    )  # fmt: skip
    assert done.returncode in codes, done.stderr
    return out


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Place:
    """A real run of two episodes, and a history store it was added to by the run itself."""
    work = tmp_path_factory.mktemp("guard")
    db = work / "history.sqlite"
    out = real_run(work, "out", [HEALTHY, HEALTHY], "--history", str(db))
    (run_dir,) = out.glob("run-*")
    return Place(work, out, run_dir.name.removeprefix("run-"), db)


@pytest.mark.slow
@pytest.mark.parametrize("sink", [s for s in SINKS if s not in ("ab --junit-file", "continuous --junit-file")])
def test_a_real_runs_files_and_history_are_never_written_over(real: Place, sink: str, capsys, monkeypatch):
    monkeypatch.chdir(real.root)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    found = targets(real)
    found["run-dir harness.log"] = real.run_dir / "harness.log"
    for name, target in found.items():
        if sink in DATABASE_SINKS and name == "history store":
            continue
        argv = [a.replace(STAMP, real.stamp) for a in argv_for(sink, real, target, monkeypatch)]
        assert_refused(capsys, argv, target)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    code, _, err = cli(capsys, "check", str(real.out))  # the run still reads as it was published
    assert code in (0, 1), err


@pytest.mark.slow
def test_a_real_tainted_run_is_refused_by_compare_and_warned_about_with_the_flag(tmp_path: Path):
    rows = [HEALTHY, {"agent": str(AGENTS / "series_appending_agent.py"), "task_ref": TASK, "seed": 1}, HEALTHY]
    out = real_run(tmp_path, "tainted", rows, codes=(4,))
    done = harness("compare", str(out), str(out), cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert re.search(r"the baseline \S+ is tainted \(its evidence was tampered with: ", lines[0]), lines[0]
    done = harness("compare", str(out), str(out), "--allow-tainted", "--format", "markdown", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "WARNING: TAINTED RUN: the baseline" in done.stderr and "TAINTED RUN: the current run" in done.stdout


@pytest.mark.slow
def test_the_ci_slice_against_the_committed_baseline_shows_no_runtime_mismatch(tmp_path: Path):
    """What .ci/run does: the everyday slice, compared with deliverables/perf/baseline-slice."""
    out = tmp_path / "slice"
    done = harness("--episodes", "24", "--workers", "4", "--strict-spec", "--no-progress", "--output-dir", str(out),
                   cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    baseline = next(SLICE.glob("perf-manifest-*.json"))
    done = harness("compare", str(baseline), str(out), "--fail-on", "never", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert_no_equal_values_shown(done.stdout + done.stderr)
    ours = json.loads(next(out.glob("perf-manifest-*.json")).read_text())["interpreter"]
    theirs = _manifest(SLICE).interpreter
    if (ours["python_version"], ours["tracecore_version"]) == (theirs.python_version, theirs.tracecore_version):
        assert "RUNTIME MISMATCH" not in done.stdout + done.stderr, done.stdout


@pytest.mark.parametrize("command", ["check", "compare"])
def test_a_junit_file_without_the_junit_format_is_refused_not_ignored(place: Place, capsys, command: str):
    target = place.root / "verdict.junit.xml"
    runs = [str(place.out)] * (2 if command == "compare" else 1)
    code, _, err = cli(capsys, command, *runs, "--junit-file", str(target))
    assert code == 2 and "--junit-file is written by --format junit, not --format text: add --format junit" in err, err
    assert not target.exists()
