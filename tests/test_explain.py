"""explain: which functions account for a row whose instruction count moved, from the profiles
each instruction run keeps (one counted episode per scenario row: its callgrind profile, and a
traced native replay's Python stacks)."""

from __future__ import annotations

import ast
import hashlib
import json
import re
from pathlib import Path

import pytest

from tracecore_perf.explain.profiles import read_callgrind, read_folded

from conftest import harness, interpreter_with_own_copies, scenario_file

# A callgrind file as callgrind writes one (name compression, a recursive function, a call
# whose cost line follows it, subposition compression), small enough to check by hand.
CALLGRIND = """\
version: 1
creator: callgrind-3.19.0
pid: 9
part: 1
positions: line
events: Ir
summary: 1000

ob=(1) /usr/bin/python
fl=(1) ceval.c
fn=(1) outer
10 100
cfn=(2) walk
calls=1 20
11 700
+1 5

fn=(2)
20 300
cfn=(3) walk'2
calls=2 20
21 350
cfn=(4) leaf
calls=1 30
22 50

fn=(3)
20 300
cfn=(4)
calls=1 30
22 50

fn=(4)
30 100
totals: 1005
"""


def test_callgrind_own_and_inclusive_counts_count_a_recursive_function_once(tmp_path):
    path = tmp_path / "p.callgrind"
    path.write_text(CALLGRIND)
    profile = read_callgrind(path)
    assert profile.total == 1000 and profile.unit == "instructions"
    # own: the cost lines of each function, every recursion level under one name
    assert profile.own == {"outer": 105, "walk": 600, "leaf": 100}
    # walk's inclusive is the call into its first level from outer (700), not that plus its
    # own recursive call (350) counted again
    assert profile.inclusive["walk"] == 700 and profile.inclusive["leaf"] == 100
    assert profile.inclusive["outer"] == 105 + 700  # running when counting began: own + what it called


def test_folded_stacks_give_own_and_inclusive_bytecodes(tmp_path):
    path = tmp_path / "p.folded"
    path.write_text("run (r.py:1);step (s.py:5) 40\nrun (r.py:1) 10\nrun (r.py:1);step (s.py:5);step (s.py:5) 5\n")
    profile = read_folded(path)
    assert profile.total == 55
    assert profile.own == {"step (s.py:5)": 45, "run (r.py:1)": 10}
    assert profile.inclusive == {"run (r.py:1)": 55, "step (s.py:5)": 45}  # a recursive frame once per stack


def test_a_name_an_agent_gives_its_code_cannot_add_a_line_or_a_frame():
    """The folded format's separators and what a terminal or XML would act on, shown escaped."""
    from tracecore_perf.run.episode.pyprofile import frame_name

    evil = "evil\nrun (agent_bench/runner/runner.py:214) 7777777;x\x1b[31m"
    code = (lambda: None).__code__
    code = code.replace(**{"co_qualname" if hasattr(code, "co_qualname") else "co_name": evil})  # 3.11+ / 3.10
    name = frame_name(code)
    assert "\n" not in name and ";" not in name and "\x1b" not in name
    assert name.startswith("evil\\x0arun (agent_bench/runner/runner.py:214) 7777777\\x3bx\\x1b[31m (")


def test_the_flame_graph_is_well_formed_whatever_the_names():
    from xml.dom import minidom

    from tracecore_perf.explain.flame import differential_svg

    base = {"run (r.py:1);<script>alert(1)</script> (x.py:1)": 10, "run (r.py:1)": 5}
    current = {"run (r.py:1);<script>alert(1)</script> (x.py:1)": 30, "run (r.py:1);esc\x1b[31m (y.py:2)": 5}
    svg = differential_svg(base, current, "title \x00 & <b>")
    document = minidom.parseString(svg)  # raises on anything XML takes no character for
    assert "<script>" not in svg and len(document.getElementsByTagName("rect")) == 4


def test_each_scenario_row_gets_a_flame_graph_of_its_own():
    from tracecore_perf.cli.explain import flame_name

    assert flame_name("/a/toy.py", "t@1") != flame_name("/b/toy.py", "t@1")
    assert flame_name("/a/toy.py", "t@1").startswith("flame-toy.py-t@1-")


def test_a_kept_profile_is_read_only_as_a_regular_file_of_its_rows_bytes(tmp_path):
    """A FIFO (read would block), a link (to /dev/zero: endless) or other bytes at a profile's
    name: refused with a line, at once."""
    import os

    from tracecore_perf.explain import ProfileUnusable, _kept
    from tracecore_perf.published import PublishedRun

    profiles = tmp_path / "run-S" / "profiles"
    profiles.mkdir(parents=True)
    run = PublishedRun("S", tmp_path, {})
    (profiles / "good").write_text("a 1\n")
    assert _kept(run, "good", hashlib.sha256(b"a 1\n").hexdigest()) == "a 1\n"
    os.mkfifo(profiles / "fifo")
    (profiles / "link").symlink_to("/dev/zero")
    for name, says in (("fifo", "not the file its worker kept"), ("link", "unreadable"), ("good", "changed since")):
        with pytest.raises(ProfileUnusable, match=says):
            _kept(run, name, "0" * 64)
    with pytest.raises(ProfileUnusable, match="outside the run's profiles folder"):
        _kept(run, "../../elsewhere", "0" * 64)


def test_a_profile_is_kept_only_in_the_folder_the_harness_made(tmp_path):
    """An episode that put a stale partial name in the way, or replaced the folder with a link,
    neither stops the copy nor has it written elsewhere."""
    import os

    from tracecore_perf.run.episode.callgrind import copy_profile

    source = tmp_path / "source"
    source.write_bytes(b"profile bytes")
    folder = tmp_path / "profiles"
    folder.mkdir()
    facts = os.lstat(folder)
    (folder / "p.callgrind.partial").write_text("planted")
    with open(source, "rb") as fh:
        assert copy_profile(fh.fileno(), str(folder / "p.callgrind"), [facts.st_dev, facts.st_ino]) is not None
    assert (folder / "p.callgrind").read_bytes() == b"profile bytes"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder.rename(tmp_path / "moved")
    folder.symlink_to(elsewhere)
    with open(source, "rb") as fh:
        assert copy_profile(fh.fileno(), str(folder / "q.callgrind"), [facts.st_dev, facts.st_ino]) is None
    assert list(elsewhere.iterdir()) == []


def test_the_replay_writes_its_stacks_past_a_fifo_planted_at_their_name(tmp_path, monkeypatch):
    import os

    from tracecore_perf.run.episode.pyprofile import PYTHON_PROFILE, BytecodeTracer

    monkeypatch.chdir(tmp_path)
    os.mkfifo(PYTHON_PROFILE)
    tracer = BytecodeTracer()
    tracer.start()
    sorted(range(10))
    tracer.stop_and_write()  # would block forever on the FIFO
    assert (tmp_path / PYTHON_PROFILE).is_file()


def _plant_loop(source: Path, function: str, iterations: int) -> None:
    """Make ``function`` in ``source`` do ``iterations`` more turns of an empty loop on each call."""
    text = source.read_text().splitlines(keepends=True)
    tree = ast.parse("".join(text))
    (node,) = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function]
    first = node.body[0]
    indent = " " * first.col_offset
    text.insert(first.lineno - 1, f"{indent}for _planted in range({iterations}):\n{indent}    pass\n")
    source.write_text("".join(text))


@pytest.mark.slow  # two instruction runs under valgrind
def test_a_planted_change_in_one_tracecore_function_is_named_first(tmp_path):
    """The same episodes, counted, before and after TraceCore's ``run()`` got a loop that costs
    ~2% of an episode: explain names ``run`` first among the Python functions, its file and
    line; compare's markdown folds the same under the row; a flame graph is drawn; a kept
    profile changed afterwards is refused, not read."""
    import agent_bench

    python = interpreter_with_own_copies(tmp_path, agent_bench)
    (site,) = python.parents[1].glob("lib/python*/site-packages")
    row = {"agent": "agents/rate_limit_agent.py", "task_ref": "rate_limited_api@1", "seed": 1}
    scenario = scenario_file(tmp_path / "rows.json", [row])
    outs = {}
    for name in ("base", "current"):
        if name == "current":
            _plant_loop(site / "agent_bench" / "runner" / "runner.py", "run", 7_000)
        argv = ["--python", str(python), "--instructions", "--episodes", "2", "--workers", "1", "--scenario", str(scenario)]
        done = harness(*argv, "--output-dir", name, "--no-progress", cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        outs[name] = tmp_path / name
    done = harness("explain", "base", "current", "--format", "json", "--svg-dir", ".", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    (explained,) = json.loads(done.stdout)["rows"]
    assert explained["changed"] and 1.01 < explained["current_instructions"] / explained["base_instructions"] < 1.04
    first = explained["python_functions"]["functions"][0]
    assert re.fullmatch(r"run \(agent_bench/runner/runner\.py:\d+\)", first["name"]), first
    assert first["current_own"] > first["base_own"]
    (svg,) = tmp_path.glob("flame-*.svg")
    assert svg.read_text().startswith("<svg") and "agent_bench/runner/runner.py" in svg.read_text()
    # the same, folded under the changed row of compare's markdown (the PR comment)
    done = harness("compare", "base", "current", "--format", "markdown", cwd=tmp_path)
    named = re.search(r"where: run \(agent\\?_bench/runner/runner\.py:\d+\)", done.stdout)
    assert "<details><summary>" in done.stdout and named, done.stdout
    # and in the HTML report of the current run against the base, with the flame graph inline
    (tmp_path / "page").mkdir()
    done = harness("report", "current", "--baseline", "base", "--output-dir", "page", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    (page,) = (tmp_path / "page").glob("*.html")
    html = page.read_text()
    assert 'id="explain"' in html and '<div class="flame"><svg' in html and "agent_bench/runner/runner.py" in html
    # a kept profile is read only as its row recorded it
    (kept,) = (outs["current"] / next(outs["current"].glob("run-*")).name / "profiles").glob("*.python.folded")
    kept.write_text(kept.read_text() + "forged (elsewhere.py:1) 1000000\n")
    done = harness("explain", "base", "current", cwd=tmp_path)
    assert done.returncode == 0 and "changed since it was kept" in done.stdout, done.stdout
    assert hashlib.sha256(kept.read_bytes()).hexdigest() not in done.stdout


@pytest.mark.slow  # an instruction run under valgrind
def test_an_agent_that_rewrites_the_kept_profiles_taints_the_run_and_is_never_read(tmp_path):
    """Row 1 (the toy agent) keeps its profiles; row 2's agent, at import, appends a forged hot
    function to every profile the run has kept. The run is published tainted, naming each
    changed profile, and explain refuses them instead of naming the forged function."""
    import shutil

    from conftest import REPO, published

    shutil.copy(REPO / "tests" / "agents" / "profile_forging_agent.py", tmp_path)
    rows = [
        {"agent": "agents/toy_agent.py", "task_ref": "filesystem_hidden_config@1", "seed": 1},
        {"agent": "profile_forging_agent.py", "task_ref": "filesystem_hidden_config@1", "seed": 1},
    ]
    scenario = scenario_file(tmp_path / "rows.json", rows)
    argv = ["--instructions", "--episodes", "2", "--workers", "1", "--scenario", str(scenario), "--output-dir", "out"]
    done = harness(*argv, "--no-progress", cwd=tmp_path)
    assert done.returncode == 4, done.stderr[-2000:]  # tainted
    summary = published(tmp_path / "out", "summary")
    problems = summary["integrity"]["problems"]
    assert summary["status"] == "tainted" and any("profile episode-000000-a1.callgrind changed" in p for p in problems), problems
    done = harness("explain", "out", "out", "--all", "--allow-tainted", cwd=tmp_path)
    assert "forged_hot_function" not in done.stdout and "changed since it was kept" in done.stdout, done.stdout + done.stderr
