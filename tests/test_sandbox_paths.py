"""``--sandbox`` hides the run directory whatever form ``--output-dir`` takes.

A sandboxed episode's working directory is its scratch directory, so the run directory has to
reach the sandbox as an absolute path, and as the directory it really is: an output folder given
relative to the harness's working directory (the default, ``deliverables/perf``, is one), reached
through a link, or through a ``..``, must be hidden all the same. Each test runs the real harness
from the test's folder with such an ``--output-dir`` and a fixture agent
(``agents/run_dir_peeking_agent.py``) that knows the output folder's absolute paths and tries to
list and read every run directory it finds there; what it saw reaches the published row, in the
error it raises.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

import pytest
from test_containment import (
    HEALTHY,
    MARKER,
    TIMEOUT,
    Run,
    assert_clean,
    assert_ended_and_published,
    assert_healthy_rows_succeed,
    await_no_leftovers,
    rows_by_index,
)

from tracecore_perf.run.launcher import hidden_from_sandbox

from conftest import AGENTS, run_watched, scenario_file

PEEKER = AGENTS / "run_dir_peeking_agent.py"


def _layout(work: Path, form: str) -> tuple[str, list[Path]]:
    """The ``--output-dir`` argument of ``form`` (run from ``work``), and the absolute paths an
    agent may know the output folder by. The run's files end up in ``work/out`` in every form."""
    if form == "relative":
        return "out", [work / "out"]
    if form == "link":
        (work / "real-out").mkdir()
        (work / "out").symlink_to("real-out")
        return "out", [work / "out", work / "real-out"]
    if form == "dotdot":
        (work / "x").mkdir()
        return "./x/../out", [work / "x" / ".." / "out", work / "out"]
    raise AssertionError(form)


def peeking_run(work: Path, form: str, *args: str) -> Run:
    """The harness over a healthy episode, the peeking fixture and another healthy one, with
    ``--output-dir`` in ``form``, started from ``work``."""
    output_dir, known = _layout(work, form)
    peeker = work / "run_dir_peeking_agent.py"  # the fixture, told where the output folder is
    source = PEEKER.read_text().replace(
        "OUTPUT_DIRS: list[str] = []", f"OUTPUT_DIRS: list[str] = {json.dumps([str(p) for p in known])}"
    )
    assert source != PEEKER.read_text(), "the fixture's OUTPUT_DIRS line moved"
    peeker.write_text(source)
    rows = [HEALTHY, {"agent": str(peeker), "task_ref": HEALTHY["task_ref"], "seed": 1}, HEALTHY]
    scenario = scenario_file(work / "scenario.json", rows)
    (work / "tmp").mkdir()
    marker = f"{MARKER}-{uuid.uuid4().hex[:12]}"
    command = [
        sys.executable, "-m", "tracecore_perf", "--scenario", str(scenario), "--episodes", str(len(rows)),
        "--workers", "1", "--timeout", str(TIMEOUT), "--output-dir", output_dir, "--json", "--no-progress",
        "--log-format", "json", *args,
    ]  # fmt: skip
    env = {**os.environ, "TMPDIR": str(work / "tmp"), "HOSTILE_MARKER": marker}
    run = Run(work=work, rows=rows)
    done = run_watched(command, cwd=work, env=env, capture_output=True, text=True, watch=[work])
    run.returncode, run.stdout, run.stderr, run.finished = done.returncode, done.stdout, done.stderr, True
    run.leftovers = await_no_leftovers(work, marker)
    if "--sandbox" in args and run.returncode == 2 and "--sandbox" in run.stderr:
        pytest.skip(run.stderr.strip())  # this host allows no unprivileged user namespaces
    return run


def peeked(run: Run) -> dict[str, list[str]]:
    """What the fixture saw: each run directory it found, and what it could do there."""
    error = rows_by_index(run)[1]["error"]
    assert error.startswith("RuntimeError: peek: "), error
    return json.loads(error.removeprefix("RuntimeError: peek: "))


@pytest.mark.slow
@pytest.mark.parametrize("form", ["relative", "link", "dotdot"])
def test_a_sandboxed_episode_sees_no_run_directory_whatever_form_the_output_dir_takes(tmp_path: Path, form: str):
    run = peeking_run(tmp_path, form, "--sandbox")
    assert_ended_and_published(run, exit_code=1)  # the fixture's own row fails; nothing else
    assert_clean(run)
    found = peeked(run)
    assert found, f"the fixture found no run directory: it proves nothing; {run.tail()}"
    assert all(seen == [] for seen in found.values()), found
    assert_healthy_rows_succeed(run)
    assert run.artifact("manifest")["settings"]["sandbox"] is True
    assert run.leftovers == []


@pytest.mark.slow
def test_without_the_sandbox_the_peek_reads_the_run_directory(tmp_path: Path):
    """The same fixture and relative ``--output-dir`` without ``--sandbox``: it reads the run
    (else the sandboxed runs' empty findings prove nothing)."""
    run = peeking_run(tmp_path, "relative")
    assert_ended_and_published(run, exit_code=1)
    found = peeked(run)
    assert found and all({"listed", "manifest", "series", "artifacts"} <= set(seen) for seen in found.values()), found


# --- the paths themselves --------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["relative", "link", "dotdot"])
def test_the_run_directory_reaches_the_sandbox_absolute_and_resolved(tmp_path: Path, monkeypatch, form: str):
    output_dir, _ = _layout(tmp_path, form)
    real_out = tmp_path / ("real-out" if form == "link" else "out")
    real_out.mkdir(exist_ok=True)
    monkeypatch.chdir(tmp_path)
    run_dir = Path(output_dir) / "run-20260101T000000Z"
    run_dir.mkdir()
    real = (real_out / run_dir.name).resolve()
    assert hidden_from_sandbox(run_dir, tmp_path / "tmp" / "tracecore-perf-x") == [str(real)]


def test_a_run_directory_holding_the_scratch_is_not_hidden(tmp_path: Path, monkeypatch):
    """Hiding it would hide the episode's own scratch directory (reached here through a link)."""
    (tmp_path / "out" / "run-x" / "tmp").mkdir(parents=True)
    (tmp_path / "tmp-link").symlink_to(tmp_path / "out" / "run-x" / "tmp")
    monkeypatch.chdir(tmp_path)
    assert hidden_from_sandbox(Path("out/run-x"), tmp_path / "tmp-link" / "tracecore-perf-x") == []
    assert hidden_from_sandbox(Path("out/run-x"), Path("out/run-x")) == []


@pytest.mark.slow
def test_the_sandbox_refuses_a_relative_path_to_hide(tmp_path: Path):
    """Defence in depth: a path to hide that is not absolute would be looked up from the scratch
    directory and hide nothing, so the episode does not run (its row fails) rather than run unhidden."""
    from tracecore_perf.run.episode import sandbox

    refused = sandbox.probe()
    if refused:
        pytest.skip(refused)
    scratch = tmp_path / "root" / "scratch"
    scratch.mkdir(parents=True)
    code = (
        "import os, sys\n"
        "from tracecore_perf.run.episode import sandbox\n"
        "os.chdir(sys.argv[1])\n"
        "sandbox.enter(sys.argv[1], sys.argv[2], ['out/run-x'])\n"
        "print('entered')\n"
    )
    done = run_watched([sys.executable, "-c", code, str(scratch), str(scratch.parent)], capture_output=True, text=True)
    assert done.returncode == sandbox.EXIT_SANDBOX_FAILED, (done.returncode, done.stdout, done.stderr)
    assert "entered" not in done.stdout
    assert "a path to hide is not absolute: out/run-x" in done.stderr, done.stderr
