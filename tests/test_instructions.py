"""Instruction mode (``--instructions``): per-episode instruction counts under Valgrind, and the
verdicts on them (compare, history, the CI gate's refusal of a stale baseline).

The fast tests work on copies of the committed instruction-mode slice
(deliverables/perf/baseline-slice-instructions/) whose counts are scaled by known factors; the
slow ones run real episodes under Valgrind."""

from __future__ import annotations

import json
import re
import shutil
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from runs import row

from tracecore_perf.cli import main
from tracecore_perf.published import locate
from tracecore_perf.verdicts.compare import Settings, SetupMismatch, compare_rows, compare_runs, uncounted_rows

from conftest import REPO, harness, harness_env, leftover_processes, published, scenario_file

COUNTED = REPO / "deliverables" / "perf" / "baseline-slice-instructions"
NATIVE = REPO / "deliverables" / "perf" / "baseline-slice"
TOY = "agents/toy_agent.py"
# what separates two runs of the same code: a few thousand instructions in ~50 million
JITTER = [1.0, 1.00004, 0.99997, 1.00002, 0.99995, 1.00003, 0.99999, 1.00001, 0.99996, 1.00005]


def counted_run(out: Path, index: int, *, toy_factor: float = 1.0, tracecore: str | None = None, spread: float = 1.0) -> Path:
    """A copy of the committed instruction slice as run ``index`` (its own stamp, an hour
    apart), every count scaled by the jitter of its index (times ``spread``), the toy agent's
    also by ``toy_factor``."""
    stamp = f"20270101T{index:02d}0000Z"
    folder = out / f"run{index:02d}"
    folder.mkdir(parents=True)
    data = {kind: json.loads(next(COUNTED.glob(f"perf-{kind}-*.json")).read_text()) for kind in ("manifest", "summary", "series")}
    started = datetime(2027, 1, 1, tzinfo=timezone.utc) + timedelta(hours=index)
    data["manifest"].update(stamp=stamp, generated_at=started.isoformat())
    if tracecore:
        data["manifest"]["interpreter"]["tracecore_version"] = tracecore
    data["summary"]["stamp"] = stamp
    for episode in data["series"]:
        factor = (1 + (JITTER[index % len(JITTER)] - 1) * spread) * (toy_factor if episode["agent"] == TOY else 1.0)
        episode["instructions"] = round(episode["instructions"] * factor)
    for kind, value in data.items():
        (folder / f"perf-{kind}-{stamp}.json").write_text(json.dumps(value))
    shutil.copy(next(COUNTED.glob("perf-samples-*.json")), folder / f"perf-samples-{stamp}.json")
    return folder


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- compare on counts ---------------------------------------------------------------------------


def counted_rows(counts: list[int], *, seeds: list[int] | None = None) -> list:
    return [row(i, seed=(seeds or list(range(len(counts))))[i], instructions=c) for i, c in enumerate(counts)]


BASE = [48_800_000 + 3_000 * (i % 4) for i in range(12)]  # the spread of seeds within a row


def test_identical_counts_are_no_change_and_a_one_percent_step_a_regression():
    same = [round(c * JITTER[i % len(JITTER)]) for i, c in enumerate(BASE)]
    (result,) = compare_rows(counted_rows(BASE), counted_rows(same), Settings(metric="instructions"))
    assert result.verdict == "no change" and not result.regression and result.paired
    assert abs(result.ratio.value - 1) < 1e-4
    heavier = [round(c * 1.01) for c in BASE]
    strict = Settings(metric="instructions", noise=0.002, margin=0.005)
    (result,) = compare_rows(counted_rows(BASE), counted_rows(heavier), strict)
    assert result.verdict == "slower" and result.regression
    assert result.ratio.low > 1.009 and result.ratio.high < 1.011
    # the default margin (1%) lets exactly +1% through as slower, and stops +2%
    (result,) = compare_rows(counted_rows(BASE), counted_rows(heavier), Settings(metric="instructions"))
    assert result.verdict == "slower" and not result.regression
    (result,) = compare_rows(counted_rows(BASE), counted_rows([round(c * 1.02) for c in BASE]), Settings(metric="instructions"))
    assert result.regression


def test_other_seeds_are_compared_unpaired_with_a_wider_interval():
    other = counted_rows([round(c * 1.01) for c in BASE], seeds=list(range(100, 112)))
    (result,) = compare_rows(counted_rows(BASE), other, Settings(metric="instructions"))
    assert result.paired is False
    (paired,) = compare_rows(counted_rows(BASE), counted_rows([round(c * 1.01) for c in BASE]), Settings(metric="instructions"))
    assert result.ratio.high - result.ratio.low > paired.ratio.high - paired.ratio.low


def _counted_per_row(counts: list[int], native_only: int) -> list:
    """A row of an instruction run with --counted-per-row len(counts): those episodes counted,
    then ``native_only`` more run only natively (no count, by design)."""
    rows = counted_rows(counts)
    start = len(rows)
    return rows + [row(start + i, seed=start + i, native_only=True) for i in range(native_only)]


def test_two_counted_episodes_per_row_are_judged_paired_and_the_native_only_ones_are_not_uncounted():
    base = _counted_per_row(BASE[:2], native_only=4)
    (same,) = compare_rows(base, _counted_per_row([round(c * 1.00002) for c in BASE[:2]], 4), Settings(metric="instructions"))
    assert same.verdict == "no change" and same.paired and (same.baseline_n, same.current_n) == (2, 2)
    heavier = _counted_per_row([round(c * 1.02) for c in BASE[:2]], native_only=4)
    (result,) = compare_rows(base, heavier, Settings(metric="instructions"))
    assert result.verdict == "slower" and result.regression and result.ratio.value == pytest.approx(1.02, abs=1e-4)
    # against a baseline that counted every episode: the two seeds both counted are paired
    (result,) = compare_rows(counted_rows(BASE), heavier, Settings(metric="instructions"))
    assert result.paired and result.current_n == 2 and result.regression
    # one counted episode is no figure to judge: not comparable, never a verdict
    (result,) = compare_rows(_counted_per_row(BASE[:1], 5), _counted_per_row(BASE[:1], 5), Settings(metric="instructions"))
    assert result.verdict == "not comparable"
    assert uncounted_rows(base, "baseline") == []
    lost = [*base, row(len(base), seed=99)]  # a success with no count, not meant to go uncounted
    (named,) = uncounted_rows(lost, "baseline")
    assert "1 of 7 episodes" in named


def test_compare_defaults_to_instructions_between_counted_runs(tmp_path, capsys):
    base, cur = counted_run(tmp_path, 0), counted_run(tmp_path, 1, toy_factor=1.03)
    code, out, _ = cli(capsys, "compare", str(base), str(cur), "--format", "json", "--fail-on", "regression")
    comparison = json.loads(out)
    assert code == 1 and comparison["metric"] == "instructions" and comparison["noise"] == 0.002
    by_agent = {r["agent"]: r for r in comparison["rows"]}
    assert by_agent[TOY]["regression"] and by_agent[TOY]["ratio"]["value"] == pytest.approx(1.03, abs=1e-4)
    assert [r["verdict"] for a, r in by_agent.items() if a != TOY] == ["no change"] * 3
    code, out, _ = cli(capsys, "compare", str(base), str(counted_run(tmp_path, 2)), "--fail-on", "regression")
    assert code == 0 and "NO CHANGE" in out and "M instructions" in out


def test_time_between_a_counted_run_and_a_native_one_is_refused(tmp_path, capsys):
    counted = counted_run(tmp_path, 0)
    for argv in ([str(NATIVE), str(counted)], [str(counted), str(NATIVE), "--metric", "wall_clock_s"]):
        code, out, err = cli(capsys, "compare", *argv)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
        assert "ran under Valgrind" in err and "not comparable" in err
    code, _, err = cli(capsys, "compare", str(NATIVE), str(NATIVE), "--metric", "instructions")
    assert code == 2 and "needs two runs made with --instructions" in err


def test_time_of_two_counted_runs_is_said_to_be_valgrinds(tmp_path, capsys):
    base, cur = counted_run(tmp_path, 0), counted_run(tmp_path, 1)
    code, out, _ = cli(capsys, "compare", str(base), str(cur), "--metric", "cpu_s")
    assert code == 0 and "WARNING both runs ran under Valgrind" in out
    # check does not judge Valgrind's wall clock against the guide's native 15 s
    code, out, _ = cli(capsys, "check", str(base), "--thresholds", str(_thresholds(tmp_path, max_wall_clock_s=0.001)))
    assert code == 0 and "max_wall_clock_s not judged" in out


def _thresholds(tmp_path: Path, **values: float) -> Path:
    path = tmp_path / "thresholds.toml"
    path.write_text("[tool.tracecore_perf.thresholds]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()))
    return path


def test_same_runtime_refuses_a_stale_baseline_naming_the_refresh(tmp_path):
    base, moved = locate(counted_run(tmp_path, 0)), locate(counted_run(tmp_path, 1, tracecore="1.2.0"))
    with pytest.raises(SetupMismatch, match=r"TraceCore 1.1.3 vs 1.2.0.*--strict-spec --instructions"):
        compare_runs(base, moved, same_runtime=True)
    notices = compare_runs(base, moved).notices  # without it: compared, and said loudly
    assert "runtime_mismatch" in {n.code for n in notices}


# --- history on counts ---------------------------------------------------------------------------


def history_of(tmp_path: Path, capsys, runs: list[Path]) -> Path:
    db = tmp_path / "h.sqlite"
    code, _, err = cli(capsys, "history", "add", *map(str, runs), "--db", str(db))
    assert code == 0, err
    return db


def test_history_finds_a_two_percent_step_in_counts_and_nothing_else(tmp_path, capsys):
    runs = [counted_run(tmp_path, i, toy_factor=1.02 if i >= 5 else 1.0) for i in range(10)]
    db = history_of(tmp_path, capsys, runs)
    code, out, _ = cli(capsys, "history", "show", "--db", str(db), "--format", "json", "--metric", "instructions")
    found = json.loads(out)
    (cp,) = found["change_points"]
    assert (cp["agent"], cp["stamp"], cp["direction"]) == (TOY, "20270101T050000Z", "slower")
    assert cp["ratio"] == pytest.approx(1.02, abs=1e-3)
    # the time figures of a run under Valgrind are not kept: they would be a false step
    _, out, _ = cli(capsys, "history", "show", "--db", str(db), "--format", "json", "--metric", "cpu_s")
    assert all(point["value"] is None for series in json.loads(out)["series"] for point in series["points"])
    # check gates on instructions by default, as the newest run counted them
    code, out, _ = cli(capsys, "history", "check", "--db", str(db), "--fail-on", "regression")
    assert code == 1 and "instructions" in out


@pytest.mark.parametrize("step", [1.04, 1.05])
def test_history_finds_a_four_percent_step_in_counts_with_three_runs_on_each_side(tmp_path, capsys, step):
    """Three runs each side: no permutation or rank test can go below p = 0.1 (two of the 20
    ways to split six runs in two are the most extreme), so a step of counts that repeat to
    +-0.02% is judged on its size against that spread (Student's t), and found."""
    runs = [counted_run(tmp_path, i, toy_factor=step if i >= 3 else 1.0, spread=4) for i in range(6)]
    db = history_of(tmp_path, capsys, runs)
    code, out, _ = cli(capsys, "history", "show", "--db", str(db), "--format", "json", "--metric", "instructions")
    found = json.loads(out)
    for series in found["series"]:  # the spread of every row's counts: +-0.02%, not the 0.005% of JITTER
        values = [p["value"] for p in series["points"][:3]]
        assert 1.0002 < max(values) / min(values) < 1.0005, series
    (cp,) = found["change_points"]
    assert (cp["agent"], cp["stamp"], cp["direction"]) == (TOY, "20270101T030000Z", "slower")
    assert (cp["runs_before"], cp["runs_after"]) == (3, 3)
    assert cp["ratio"] == pytest.approx(step, abs=1e-3)
    code, out, _ = cli(capsys, "history", "check", "--db", str(db), "--fail-on", "regression")
    assert code == 1 and "REGRESSION slower from run 20270101T030000Z: instructions of agents/toy_agent.py" in out


def test_history_names_a_step_in_counts_from_the_first_run_after_it(tmp_path, capsys):
    """Counts repeat to +-0.02%: the first run 4% dearer is the evidence, and history check
    fails on it, not two runs later."""
    runs = [counted_run(tmp_path, i, toy_factor=1.04 if i == 3 else 1.0) for i in range(4)]
    db = history_of(tmp_path, capsys, runs)
    code, out, _ = cli(capsys, "history", "show", "--db", str(db), "--format", "json", "--metric", "instructions")
    (cp,) = json.loads(out)["change_points"]
    assert (cp["agent"], cp["stamp"], cp["direction"], cp["runs_before"], cp["runs_after"]) == (
        TOY, "20270101T030000Z", "slower", 3, 1
    )  # fmt: skip
    assert cp["ratio"] == pytest.approx(1.04, abs=1e-3)
    code, out, _ = cli(capsys, "history", "check", "--db", str(db), "--fail-on", "regression")
    assert code == 1 and "REGRESSION slower from run 20270101T030000Z: instructions of agents/toy_agent.py" in out
    # two runs, one each side, are enough as well
    (tmp_path / "two").mkdir()
    db2 = history_of(tmp_path / "two", capsys, [runs[2], runs[3]])
    code, out, _ = cli(capsys, "history", "check", "--db", str(db2), "--fail-on", "regression")
    assert code == 1 and "20270101T030000Z" in out


@pytest.mark.parametrize("spread", [1, 40])  # +-0.005% and +-0.2% run to run: under the 0.5% minimum change
def test_history_of_counts_that_wobble_under_the_minimum_change_has_no_change_point(tmp_path, capsys, spread):
    db = history_of(tmp_path, capsys, [counted_run(tmp_path, i, spread=spread) for i in range(10)])
    code, out, _ = cli(capsys, "history", "show", "--db", str(db), "--format", "json", "--metric", "instructions")
    assert code == 0 and json.loads(out)["change_points"] == []


def test_history_of_unmoved_counts_has_no_change_point_and_passes(tmp_path, capsys):
    db = history_of(tmp_path, capsys, [counted_run(tmp_path, i) for i in range(10)])
    code, out, _ = cli(capsys, "history", "show", "--db", str(db), "--format", "json", "--metric", "instructions")
    assert code == 0 and json.loads(out)["change_points"] == []
    code, out, _ = cli(capsys, "history", "check", "--db", str(db), "--fail-on", "regression")
    assert code == 0 and "PASS" in out


def test_a_matrix_counts_instructions_at_its_top_level_or_per_cell(tmp_path):
    from tracecore_perf.matrix import plan
    from tracecore_perf.matrix.cells import run_argv, run_options

    path = tmp_path / "cells.toml"
    path.write_text('instructions = true\n[[cells]]\nname = "a"\n[[cells]]\nname = "b"\ninstructions = false\n')
    a, b = plan.load(path).cells
    assert (a.settings.instructions, b.settings.instructions) == (True, False)
    assert run_options(a, tmp_path, 1024).settings.instructions and not run_options(b, tmp_path, 1024).settings.instructions
    assert "--instructions" in run_argv(a, tmp_path, tmp_path / "s.json")  # on a Ray node
    assert "--instructions" not in run_argv(b, tmp_path, tmp_path / "s.json")


# --- bad input: one line, exit 2, no process -----------------------------------------------------


def test_spawn_isolation_with_instructions_is_refused(tmp_path, capsys):
    code, _, err = cli(capsys, "--instructions", "--isolation", "spawn", "--output-dir", str(tmp_path / "out"))
    assert code == 2 and "--isolation spawn" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_instructions_without_valgrind_names_the_package(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on it
    code, _, err = cli(capsys, "--instructions", "--output-dir", str(tmp_path / "out"))
    assert code == 2 and "apt-get install valgrind" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli(capsys, "ab", "--python", "/bin/true", "--python", "/bin/true", "--instructions")
    assert code == 2 and "apt-get install valgrind" in err


# --- real episodes under Valgrind ----------------------------------------------------------------


@pytest.mark.long
@pytest.mark.slow
def test_a_counted_run_records_each_episode_and_resumes_counting(tmp_path):
    scenario = scenario_file(tmp_path / "toy.json", [{"agent": TOY, "task_ref": "filesystem_hidden_config@1", "seed": 3}])
    done = harness(
        "--episodes",
        "3",
        "--workers",
        "2",
        "--instructions",
        "--counted-per-row",
        "0",  # every episode counted, as before the setting
        "--scenario",
        str(scenario),
        "--output-dir",
        "out",
        "--no-progress",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    # no bar (--no-progress), but a run under Valgrind says how far it got, and always its last row
    assert re.search(r"run\.progress .*done=3 failed=0 total=3", done.stderr), done.stderr[-2000:]
    manifest = published(tmp_path / "out", "manifest")
    assert manifest["settings"]["instructions"] is True and manifest["counting"]["hash_seed"] == 0
    assert manifest["counting"]["valgrind_version"].startswith("valgrind-")
    assert manifest["interpreter"]["python_build"].startswith(manifest["interpreter"]["python_version"])
    counts = [r["instructions"] for r in published(tmp_path / "out", "series")]
    # a toy episode is tens of millions of instructions; seeds differ by well under 1%
    assert all(isinstance(c, int) and c > 10_000_000 for c in counts) and max(counts) / min(counts) < 1.01
    summary = published(tmp_path / "out", "summary")
    assert summary["instructions"][0]["count"] == 3 and "Valgrind" in summary["timing_note"]
    # both workers' own instructions, each written as it exited (none lost to the run's end)
    assert summary["resources"]["workers_uncounted"] == 0 and summary["resources"]["workers_instructions"] > 1_000_000
    # what the count cannot see: each episode ran again natively, and its twin's system time and
    # page faults are on its row (a forked episode takes hundreds of copy-on-write faults)
    series = published(tmp_path / "out", "series")
    assert all(r["native_minor_faults"] > 100 and r["native_cpu_sys_s"] is not None for r in series), series
    assert all(r["minor_faults"] > 0 for r in series)
    assert summary["instructions"][0]["native_count"] == 3 and summary["instructions"][0]["native_minor_faults_median"] > 100
    parts = summary["resources"]["parts"]
    assert set(parts) == {"harness", "zygote", "workers", "episodes", "native_zygote", "native_workers", "native_episodes"}
    assert parts["native_episodes"]["minor_faults"] == sum(r["native_minor_faults"] for r in series)

    # a resumed run counts too: the mode comes from the manifest
    (run_dir,) = (tmp_path / "out").glob("run-*")
    stored = json.loads((run_dir / "manifest.json").read_text())
    stored["settings"]["episodes"] = 5
    (run_dir / "manifest.json").write_text(json.dumps(stored))
    for old in (tmp_path / "out").glob("perf-*"):
        old.unlink()
    done = harness("--resume", str(run_dir), "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert re.search(r"run\.progress .*done=5 failed=0 total=5", done.stderr), done.stderr[-2000:]  # counted from the rows kept
    rows = published(tmp_path / "out", "series")
    assert len(rows) == 5 and all(r["instructions"] and r["instructions"] > 10_000_000 for r in rows)
    # same seed, same count: the resumed episodes land within 0.1% of the first ones' spread
    assert max(r["instructions"] for r in rows) / min(r["instructions"] for r in rows) < 1.01
    # the counts' folder went with the run, and nothing was left running
    scratch = Path(harness_env(tmp_path)["TMPDIR"])
    assert not list(scratch.glob("tracecore-perf-callgrind-*"))
    assert leftover_processes(tmp_path) == []


@pytest.mark.slow  # two instruction runs under valgrind, and a report
@pytest.mark.long
def test_work_moved_into_the_kernel_fails_the_gate_though_the_count_did_not_move(tmp_path):
    """The same agent and seeds, the current one having the kernel fill in 3,000 fresh pages per
    episode (``MAP_POPULATE``: next to no instruction of its own): the counts agree, the native
    twins' minor faults do not, and ``compare --fail-on regression`` fails on them, saying so."""
    runs = {}
    for name, pages in (("base", 0), ("cur", 3000)):
        folder = tmp_path / name
        folder.mkdir()
        shutil.copy(REPO / "tests" / "agents" / "page_touching_agent.py", folder)
        (folder / "pages").write_text(str(pages))
        row = {"agent": "page_touching_agent.py", "task_ref": "filesystem_hidden_config@1"}
        scenario = scenario_file(folder / "rows.json", [row])
        argv = ["--episodes", "5", "--workers", "2", "--instructions", "--scenario", str(scenario), "--output-dir", "out"]
        done = harness(*argv, "--no-progress", cwd=folder)
        assert done.returncode == 0, done.stderr[-2000:]
        runs[name] = folder / "out"
    done = harness("compare", str(runs["base"]), str(runs["cur"]), "--fail-on", "regression", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr[-2000:]
    # the count did not move (within 0.2%, the noise floor of counts)
    assert re.search(r"median [\d.,]+ -> [\d.,]+ M instructions, x(0\.99[89]|1\.00[01])", done.stdout), done.stdout
    assert re.search(r"minor faults [\d,]+ -> [\d,]+, x[\d.]+ .*REGRESSION more", done.stdout), done.stdout
    assert "REGRESSION slower" in done.stdout
    # the report of the current run against its baseline shows it, one click from the PR comment
    (stamp,) = [p.name.removeprefix("perf-manifest-").removesuffix(".json") for p in runs["cur"].glob("perf-manifest-*.json")]
    (baseline,) = runs["base"].glob("perf-manifest-*.json")
    (tmp_path / "page").mkdir()
    argv = ["report", stamp, "--baseline", str(baseline), "--search-dir", str(runs["cur"]), "--output-dir", "page"]
    done = harness(*argv, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    (page,) = (tmp_path / "page").glob("*.html")
    html = page.read_text()
    assert 'id="kernel"' in html and "minor faults" in html and html.count('<span class="badge fail">regression</span>') >= 2


@pytest.mark.slow  # an instruction run under valgrind
def test_an_agent_that_fails_only_natively_is_seen_blinding_the_kernel_check(tmp_path):
    """Its counted episodes succeed and are counted; every native twin fails (the agent exits
    when Valgrind is not there). The rows say why they have no kernel figures, and compare
    warns, loudly, that the kernel's work went unjudged."""
    shutil.copy(REPO / "tests" / "agents" / "native_failing_agent.py", tmp_path)
    row = {"agent": "native_failing_agent.py", "task_ref": "filesystem_hidden_config@1"}
    scenario = scenario_file(tmp_path / "rows.json", [row])
    argv = ["--episodes", "5", "--workers", "2", "--instructions", "--counted-per-row", "0", "--scenario", str(scenario)]
    argv += ["--output-dir", "out"]  # every episode counted: one run only natively would fail here
    done = harness(*argv, "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    series = published(tmp_path / "out", "series")
    assert all(r["success"] and r["instructions"] > 10_000_000 for r in series)
    why = "its native twin did not finish a run (exit code 7)"
    assert all(r["native_minor_faults"] is None and r["native_error"] == why for r in series)
    done = harness("compare", "out", "out", "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    codes = [n["code"] for n in json.loads(done.stdout)["notices"]]
    assert codes.count("native_twins_failed") == 2  # said of each side
    assert "NATIVE TWINS FAILED" in done.stderr  # loud: on stderr too, whatever the format


@pytest.mark.slow  # a zygote under valgrind
def test_an_interpreter_valgrind_does_not_run_is_refused_before_anything_is_written(tmp_path):
    # a script that execs Python: valgrind counts the script and lets the interpreter go native
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    done = harness("--instructions", "--python", str(wrapper), "--output-dir", "out", "--no-progress", cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "does not run under valgrind" in done.stderr and not (tmp_path / "out").exists()
    assert leftover_processes(tmp_path) == []


@pytest.mark.slow  # an instruction run under valgrind
def test_only_the_first_episodes_of_each_row_are_counted_and_compare_judges_them(tmp_path):
    """--counted-per-row 2 (the default): of each scenario row's five episodes the first two
    are counted under Valgrind (each with its native twin), the others run only natively, as
    the run's own episodes (their artifacts in the run), their rows marked native_only with
    native figures. compare on counts judges the two counted per row, paired by seed, and does
    not call the native-only rows uncounted; the kernel check has all five."""
    rows = [
        {"agent": TOY, "task_ref": "filesystem_hidden_config@1", "seed": 3},
        {"agent": "agents/rate_limit_agent.py", "task_ref": "rate_limited_api@1"},
    ]
    scenario = scenario_file(tmp_path / "rows.json", rows)
    argv = ["--episodes", "10", "--workers", "2", "--instructions", "--scenario", str(scenario), "--output-dir", "out"]
    done = harness(*argv, "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert published(tmp_path / "out", "manifest")["settings"]["counted_per_row"] == 2
    series = sorted(published(tmp_path / "out", "series"), key=lambda r: r["episode_index"])
    counted, native = series[:4], series[4:]
    assert all(not r["native_only"] and r["instructions"] > 10_000_000 and r["native_minor_faults"] > 100 for r in counted)
    assert all(r["native_only"] and r["instructions"] is None and r["success"] and r["run_id"] for r in native)
    assert all(r["native_cpu_sys_s"] == r["cpu_sys_s"] and r["native_minor_faults"] == r["minor_faults"] for r in native)
    # natively, an episode takes a fraction of its counted time under Valgrind
    assert max(r["cpu_user_s"] for r in native) < min(r["cpu_user_s"] for r in counted)
    summary = published(tmp_path / "out", "summary")
    assert sorted((f["count"], f["native_count"]) for f in summary["instructions"]) == [(2, 5), (2, 5)]
    done = harness("compare", "out", "out", "--format", "json", "--fail-on", "regression", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    comparison = json.loads(done.stdout)
    assert comparison["metric"] == "instructions" and comparison["verdict"] == "no change"
    assert all(r["paired"] and r["baseline_n"] == 2 and len(r["kernel"]) == 2 for r in comparison["rows"])


OWN_AGENT = """\"\"\"An agent of the user's own: TraceCore's toy agent and a few helpers, in a file no .pyc
stands beside on a host that writes none.\"\"\"

from agent_bench.agents.toy_agent import ToyAgent


def _shape(value):
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_shape(item) for item in value]
    return value


class Agent(ToyAgent):
    def observe(self, observation):
        return super().observe(_shape(observation))
"""


@pytest.mark.slow  # two instruction runs under valgrind
def test_an_own_agent_files_count_does_not_include_compiling_it(tmp_path):
    """An agent file of the user's own with no .pyc beside it, on a host that writes none
    (PYTHONDONTWRITEBYTECODE): the zygote compiles it once and every episode takes that code,
    so an episode counts what it would with a .pyc there (without it, compiling the file cost
    each episode ~0.9% more). The same rows, without and with the .pyc: equal within the
    noise floor of counts."""
    import py_compile

    agent = tmp_path / "my_agent.py"
    agent.write_text(OWN_AGENT)
    scenario = scenario_file(tmp_path / "rows.json", [{"agent": "my_agent.py", "task_ref": "filesystem_hidden_config@1"}])
    medians = {}
    for name in ("no pyc", "pyc"):
        if name == "pyc":
            py_compile.compile(str(agent), doraise=True)
        argv = ["--episodes", "2", "--workers", "1", "--instructions", "--scenario", str(scenario), "--output-dir", name]
        done = harness(*argv, "--no-progress", cwd=tmp_path, env={"PYTHONDONTWRITEBYTECODE": "1"})
        assert done.returncode == 0, done.stderr[-2000:]
        series = published(tmp_path / name, "series")
        assert all(r["instructions"] > 10_000_000 for r in series)
        medians[name] = sorted(r["instructions"] for r in series)[0]
        if name == "no pyc":
            assert not (tmp_path / "__pycache__").exists()  # nothing wrote one
    assert abs(medians["pyc"] / medians["no pyc"] - 1) < 0.0005, medians


@pytest.mark.slow  # two instruction runs under valgrind
def test_an_own_agent_rows_task_is_warmed_as_a_shipped_agents_row_warms_it(tmp_path):
    """A copy of TraceCore's toy agent as the user's own file, alone in its scenario, against
    the same file beside a row of the shipped toy agent on the same task (whose warm-up warms
    the task). The warm-up never runs the user's file, but warms a task only such files run
    with TraceCore's shipped agent for it (warmup.task_agent): the lone row's count stays within
    0.3% of the other (measured +0.09%; with the task only loaded by the harness's own agent,
    +0.41%; left unwarmed, +0.50%: its modules and the runner's paths for it loaded in every
    episode)."""
    from agent_bench.agent.loader import AGENTS_PACKAGE_ROOT

    shutil.copy(AGENTS_PACKAGE_ROOT / "toy_agent.py", tmp_path / "my_toy.py")
    own = {"agent": "my_toy.py", "task_ref": "filesystem_hidden_config@1", "seed": 0}
    counts = {}
    for name, rows in (("alone", [own]), ("beside", [own, {**own, "agent": TOY}])):
        scenario = scenario_file(tmp_path / f"{name}.json", rows)
        argv = ["--episodes", str(2 * len(rows)), "--workers", "1", "--instructions", "--scenario", str(scenario)]
        done = harness(*argv, "--output-dir", name, "--no-progress", cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        manifest = published(tmp_path / name, "manifest")
        assert manifest["warmup_notes"][0].startswith("1 scenario rows of your own agent files"), manifest["warmup_notes"]
        counts[name] = {r["seed"]: r["instructions"] for r in published(tmp_path / name, "series") if r["agent"] == "my_toy.py"}
    ratio = counts["alone"][0] / counts["beside"][0]
    assert 0.998 < ratio < 1.003, counts


# --- episodes past --counted-per-row, run natively ---------------------------------------------


@pytest.mark.slow  # an instruction run
def test_an_episode_run_only_natively_is_kept_to_one_process_as_a_counted_one(tmp_path):
    """A row's first episode counted, the other two run natively (--counted-per-row 1): an
    agent that hands work to a process of its own fails in every one of them, natively too, so
    no episode of the row can do work a counted one could not."""
    shutil.copy(REPO / "tests" / "agents" / "process_starting_agent.py", tmp_path / "starter.py")
    scenario = scenario_file(tmp_path / "s.json", [{"agent": "starter.py", "task_ref": "filesystem_hidden_config@1", "seed": 0}])
    argv = ["--episodes", "3", "--workers", "1", "--instructions", "--counted-per-row", "1", "--scenario", str(scenario)]
    done = harness(*argv, "--output-dir", "out", "--no-progress", cwd=tmp_path)
    assert done.returncode == 1, done.stderr[-2000:]  # failed episodes, nothing else
    series = sorted(published(tmp_path / "out", "series"), key=lambda r: r["episode_index"])
    assert [r["native_only"] for r in series] == [False, True, True]
    for episode in series:
        assert not episode["success"], episode
        assert "PermissionError" in episode["error"] and "Operation not permitted" in episode["error"], episode["error"]


@pytest.mark.slow  # an instruction run
def test_a_run_timed_partly_natively_says_so_and_no_time_check_or_verdict_mixes_the_two(tmp_path):
    """One row, 14 episodes, two counted (--counted-per-row 2, the default) and twelve run
    natively: the run's time figures are labelled as the mix they are, the time checks look
    only at the episodes run natively (the two counted ones, ~50 times slower, are no spike),
    and compare refuses a time verdict on it, in one line."""
    from tracecore_perf.models import TIMING_MIXED

    scenario = scenario_file(tmp_path / "s.json", [{"agent": TOY, "task_ref": "filesystem_hidden_config@1", "seed": 0}])
    done = harness("--episodes", "14", "--workers", "2", "--instructions", "--scenario", str(scenario),
                   "--output-dir", "out", "--no-progress", cwd=tmp_path, env={"COLUMNS": "200"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "latency (wall) (Valgrind and native mixed)" in done.stdout, done.stdout
    summary = published(tmp_path / "out", "summary")
    assert summary["timing_note"] == TIMING_MIXED
    assert sum(r["native_only"] for r in published(tmp_path / "out", "series")) == 12
    stamp = next((tmp_path / "out").glob("perf-summary-*.json")).stem.removeprefix("perf-summary-")
    check = harness("check", stamp, "--search-dir", "out", cwd=tmp_path)
    assert check.returncode == 0 and "findings: none" in check.stdout, check.stdout
    assert "clear             long_tail_spike: no spike in 12 episodes run natively" in check.stdout, check.stdout
    summary_path = str(next((tmp_path / "out").glob("perf-summary-*.json")))
    compared = harness("compare", summary_path, summary_path, "--metric", "wall_clock_s", cwd=tmp_path)
    lines = compared.stderr.strip().splitlines()
    assert compared.returncode == 2 and len(lines) == 1, compared.stdout + compared.stderr
    assert "mixes the two" in lines[0] and "--counted-per-row" in lines[0], lines[0]
