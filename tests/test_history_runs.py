"""History from real runs: an agent at one path run five times (added with ``run --history``),
then the same path rewritten to burn 40 ms more CPU per step and run three more times, beside
the shipped toy agent, unchanged. The change point must land on the first slower run, on the
CPU median (what load on other processes barely moves: the extra work is counted in CPU time,
not wall time), and nowhere on the unchanged row, whose threshold (``--min-change 50%``) is
far above the run-to-run noise of a median CPU time (of six episodes a row: a median of three
moved by more than half once, on a loaded host); the slower row moves several times over.
Then ``history check`` and the page, in headless Chromium."""

from __future__ import annotations

import json
import re

import pytest

from cdp import Chromium, chromium_path
from conftest import AGENTS, harness, scenario_file

pytestmark = pytest.mark.slow

TASK = "filesystem_hidden_config@1"
BEFORE, AFTER = 5, 3
EXTRA_CPU_MS = 40  # per step, ~4 steps an episode: ~160 ms against ~15-20 ms of the toy agent's own


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    work = tmp_path_factory.mktemp("history")
    agent = work / "agent_under_test.py"
    source = (AGENTS / "history_agent.py").read_text()
    agent.write_text(source)
    scenario = scenario_file(
        work / "scenario.json",
        [{"agent": str(agent), "task_ref": TASK, "seed": 1}, {"agent": "agents/toy_agent.py", "task_ref": TASK, "seed": 2}],
    )
    db = work / "history.sqlite"
    stamps = []
    for i in range(BEFORE + AFTER):
        if i == BEFORE:
            agent.write_text(source.replace("EXTRA_CPU_MS = 0", f"EXTRA_CPU_MS = {EXTRA_CPU_MS}"))
        extra = ["--report"] if i == BEFORE else []
        done = harness(
            "--episodes", "12", "--workers", "2", "--scenario", str(scenario), "--output-dir", "out",
            "--history", str(db), "--json", "--no-progress", *extra, cwd=work,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        stamps.append(json.loads(done.stdout)["stamp"])
    return work, db, agent, stamps


def test_the_change_point_lands_on_the_first_slower_run_and_not_on_the_unchanged_row(history):
    work, db, agent, stamps = history
    done = harness("history", "show", "--db", str(db), "--format", "json", "--metric", "cpu_s", "--min-change", "50%", cwd=work)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert [r["stamp"] for r in found["runs"]] == stamps
    (cp,) = found["change_points"]
    assert (cp["agent"], cp["task_ref"], cp["metric"], cp["direction"]) == (str(agent), TASK, "cpu_s", "slower")
    assert cp["stamp"] == stamps[BEFORE]
    assert cp["ratio"] > 3, cp
    assert not [c for c in found["change_points"] if c["agent"] == "agents/toy_agent.py"]


def test_check_fails_on_the_slower_run_and_adding_again_changes_nothing(history):
    work, db, _, stamps = history
    gate = ["--min-change", "50%", "--fail-on", "regression", "--format", "json"]
    done = harness("history", "check", "--db", str(db), *gate, cwd=work)
    assert done.returncode == 1, done.stderr
    verdict = json.loads(done.stdout)
    assert verdict["newest"] == stamps[-1] and [r["stamp"] for r in verdict["regressions"]] == [stamps[BEFORE]]
    before = db.read_bytes()
    first = str(work / "out" / f"run-{stamps[0]}")
    again = harness("history", "add", stamps[BEFORE], first, "--db", str(db), "--search-dir", "out", cwd=work)
    assert again.returncode == 0 and again.stdout.count("already in the history") == 2, again.stderr
    assert db.read_bytes() == before


CHROMIUM = chromium_path()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package 'chromium'; .ci/run installs it)")
def test_history_page_in_headless_chromium(history, tmp_path):
    work, db, _, stamps = history
    page = work / "history.html"
    done = harness("history", "report", "--db", str(db), "--output", str(page), "--min-change", "50%", cwd=work)
    assert done.returncode == 0, done.stderr
    html = page.read_text(encoding="utf-8")
    # the run that was reported (--report) is linked, relative to the page
    (link,) = re.findall(r'href="([^"#][^"]*)"', html)
    assert (page.parent / link).resolve() == (work / "out" / f"perf-report-{stamps[BEFORE]}.html").resolve()
    assert CHROMIUM is not None
    with Chromium(CHROMIUM, tmp_path / "profile") as browser:
        browser.open(page.as_uri())
        sizes = browser.image_sizes()
        text = browser.evaluate("document.body.innerText")
        scripts = browser.evaluate("document.scripts.length")
        errors = browser.console_errors()
    assert len(sizes) == 3 and all(w > 500 and h > 200 for w, h in sizes), sizes  # two rows and the run
    assert errors == [] and scripts == 0
    assert all(stamp in text for stamp in stamps)
    assert re.search(rf"{stamps[BEFORE]}\s+slower\s+cpu_s", text)
