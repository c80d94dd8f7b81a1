"""History across runs, the fast layer: the store, change points, the CLI and its formats, the
page, and bad input, on synthetic runs cloned from the committed real slice
(``deliverables/perf/baseline-slice``) with their CPU figures scaled: deterministic series, no
process started. Real runs: ``test_history_runs.py``."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest

from tracecore_perf.cli import main
from tracecore_perf.history import store

from conftest import REPO

SLICE = REPO / "deliverables" / "perf" / "baseline-slice"
TOY = "agents/toy_agent.py"
CHAIN = "agents/chain_agent.py"
# deterministic run-to-run jitter of the CPU medians, within +-4%
JITTER = [1.00, 1.03, 0.98, 1.01, 0.97, 1.02, 0.99, 1.04, 0.96, 1.0, 1.02, 0.98]


def clone_run(
    out: Path,
    index: int,
    *,
    toy_factor: float = 1.0,
    tracecore: str | None = None,
    cpu_model: str | None = None,
    report: bool = False,
) -> Path:
    """A copy of the committed slice as run ``index`` (its own stamp, an hour apart), every
    episode's CPU scaled by the jitter of its index, the toy agent's also by ``toy_factor``."""
    stamp = f"20270101T{index:02d}0000Z"
    src = {kind: next(SLICE.glob(f"perf-{kind}-*.json")) for kind in ("manifest", "summary", "series", "samples")}
    folder = out / f"run{index:02d}"
    folder.mkdir(parents=True)
    manifest = json.loads(src["manifest"].read_text())
    manifest["stamp"] = stamp
    manifest["generated_at"] = (datetime(2027, 1, 1, tzinfo=timezone.utc) + timedelta(hours=index)).isoformat()
    if tracecore:
        manifest["interpreter"]["tracecore_version"] = tracecore
        manifest["machine_class_fields"]["tracecore"] = tracecore
        manifest["machine_class"] = f"tc{tracecore}"
    if cpu_model:
        manifest["host"]["cpu_model"] = cpu_model
        manifest["machine_class_fields"]["cpu_model"] = cpu_model
        manifest["machine_class"] = f"cpu{cpu_model}"
    summary = json.loads(src["summary"].read_text())
    summary["stamp"] = stamp
    series = json.loads(src["series"].read_text())
    jitter = JITTER[index % len(JITTER)]
    for row in series:
        factor = jitter * (toy_factor if row["agent"] == TOY else 1.0)
        row["cpu_user_s"] *= factor
        row["cpu_sys_s"] *= factor
    for kind, data in (("manifest", manifest), ("summary", summary), ("series", series)):
        (folder / f"perf-{kind}-{stamp}.json").write_text(json.dumps(data))
    (folder / f"perf-samples-{stamp}.json").write_text(src["samples"].read_text())
    if report:
        (folder / f"perf-report-{stamp}.html").write_text("<!DOCTYPE html><title>run report</title>")
    return folder


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def stepped(tmp_path_factory) -> tuple[Path, list[Path]]:
    """Ten runs: six at one level, then four where the toy agent takes twice the CPU."""
    out = tmp_path_factory.mktemp("stepped")
    runs = [clone_run(out, i, toy_factor=2.0 if i >= 6 else 1.0, report=i == 3) for i in range(10)]
    return out, runs


@pytest.fixture
def db(tmp_path, stepped, capsys) -> Path:
    path = tmp_path / "history.sqlite"
    code, _, err = cli(capsys, "history", "add", *map(str, stepped[1]), "--db", str(path))
    assert code == 0, err
    return path


def show(capsys, db: Path, *extra: str) -> dict:
    code, out, err = cli(capsys, "history", "show", "--db", str(db), "--format", "json", *extra)
    assert code == 0, err
    return json.loads(out)


# --- the store -----------------------------------------------------------------------------


def test_add_keeps_one_row_per_run_and_per_agent_and_task(db, stepped):
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 10
        assert conn.execute("SELECT count(*) FROM group_figures").fetchone()[0] == 40  # four (agent, task) groups
        assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
        run = conn.execute("SELECT episodes, workers, isolation, warmup, tracecore_version FROM runs LIMIT 1").fetchone()
    assert run == (24, 4, "forkserver", 1, "1.1.3")


def test_adding_a_run_twice_changes_nothing(db, stepped, capsys):
    before = digest(db)
    code, out, _ = cli(capsys, "history", "add", str(stepped[1][0]), str(stepped[1][4]), "--db", str(db), "--label", "again")
    assert code == 0
    assert out.count("already in the history, unchanged") == 2
    assert digest(db) == before


def test_run_figures_are_the_runs_own(db, stepped):
    series = json.loads(next(SLICE.glob("perf-series-*.json")).read_text())
    toy = sorted(r["cpu_user_s"] + r["cpu_sys_s"] for r in series if r["agent"] == TOY and r["success"])
    with sqlite3.connect(db) as conn:
        (cpu,) = conn.execute("SELECT cpu_s FROM group_figures WHERE stamp = '20270101T000000Z' AND agent = ?", [TOY]).fetchone()
    middle = len(toy) // 2
    assert cpu == pytest.approx((toy[middle] + toy[~middle]) / 2, rel=1e-4)


# --- change points ---------------------------------------------------------------------------


def test_the_change_point_lands_on_the_first_slower_run_and_nowhere_else(db, stepped, capsys):
    found = show(capsys, db, "--metric", "cpu_s")
    assert [r["stamp"] for r in found["runs"]] == [f"20270101T{i:02d}0000Z" for i in range(10)]
    (cp,) = found["change_points"]
    assert (cp["agent"], cp["task_ref"], cp["metric"], cp["direction"]) == (TOY, "filesystem_hidden_config@1", "cpu_s", "slower")
    assert cp["stamp"] == "20270101T060000Z"
    assert cp["ratio"] == pytest.approx(2.0, rel=0.08)
    assert cp["after"] / cp["before"] == pytest.approx(cp["ratio"])
    assert cp["coincides_with"] == []


def test_identical_runs_have_no_change_point_on_any_metric(tmp_path, capsys):
    runs = [clone_run(tmp_path / "same", i) for i in range(8)]
    path = tmp_path / "same.sqlite"
    assert cli(capsys, "history", "add", *map(str, runs), "--db", str(path))[0] == 0
    assert show(capsys, path)["change_points"] == []


def test_a_series_of_one_value_has_no_change_point_even_without_a_floor(tmp_path, capsys):
    """Clones share every wall-clock figure: no spread anywhere, nothing to split, whatever
    --min-change says (a permutation test would call any order of it as extreme as another)."""
    runs = [clone_run(tmp_path / "same", i) for i in range(10)]
    path = tmp_path / "same.sqlite"
    assert cli(capsys, "history", "add", *map(str, runs), "--db", str(path))[0] == 0
    found = show(capsys, path, "--metric", "wall_clock_s", "--min-change", "0")
    assert all(len({p["value"] for p in s["points"]}) == 1 for s in found["series"]) and found["series"]
    assert found["change_points"] == []


def test_a_change_with_a_tracecore_upgrade_says_so(tmp_path, capsys):
    runs = [clone_run(tmp_path, i, toy_factor=1.6 if i >= 5 else 1.0, tracecore="1.2.0" if i >= 5 else None) for i in range(9)]
    path = tmp_path / "h.sqlite"
    cli(capsys, "history", "add", *map(str, runs), "--db", str(path))
    (cp,) = show(capsys, path, "--metric", "cpu_s")["change_points"]
    assert cp["stamp"] == "20270101T050000Z"
    assert cp["coincides_with"] == ["TraceCore 1.1.3 -> 1.2.0"]


def test_machines_are_series_of_their_own_unless_mixed(tmp_path, capsys):
    # the same code on a machine twice as slow: not a regression of the code
    runs = [clone_run(tmp_path, i, toy_factor=2.0 if i >= 5 else 1.0, cpu_model="Slow CPU" if i >= 5 else None) for i in range(9)]
    path = tmp_path / "h.sqlite"
    cli(capsys, "history", "add", *map(str, runs), "--db", str(path))
    apart = show(capsys, path, "--metric", "cpu_s")
    assert apart["change_points"] == []
    assert len({s["machine_id"] for s in apart["series"]}) == 2
    (cp,) = show(capsys, path, "--metric", "cpu_s", "--mix-machines")["change_points"]
    assert cp["stamp"] == "20270101T050000Z" and cp["machine_id"] is None
    assert cp["coincides_with"][0].startswith("machine ") and "Slow CPU" in cp["coincides_with"][0]


def test_min_change_drops_changes_smaller_than_it(tmp_path, capsys):
    runs = [clone_run(tmp_path, i, toy_factor=1.3 if i >= 6 else 1.0) for i in range(10)]
    path = tmp_path / "h.sqlite"
    cli(capsys, "history", "add", *map(str, runs), "--db", str(path))
    (cp,) = show(capsys, path, "--metric", "cpu_s")["change_points"]  # +30% against the default 10%
    assert cp["stamp"] == "20270101T060000Z" and cp["ratio"] == pytest.approx(1.3, rel=0.08)
    assert show(capsys, path, "--metric", "cpu_s", "--min-change", "50%")["change_points"] == []


def test_two_slower_runs_after_six_are_not_yet_a_change_three_are(tmp_path, capsys):
    """Two runs in a row on a busy host can be slower by half: with six runs before them no
    permutation test can call that a change (two of 28 ways to pick the pair), and two runs are
    too few for Student's t. The third slower run makes it one, placed on the first."""
    path = tmp_path / "h.sqlite"
    runs = [clone_run(tmp_path / "runs", i, toy_factor=1.6 if i >= 6 else 1.0) for i in range(9)]
    assert cli(capsys, "history", "add", *map(str, runs[:8]), "--db", str(path))[0] == 0
    assert show(capsys, path, "--metric", "cpu_s")["change_points"] == []
    assert cli(capsys, "history", "add", str(runs[8]), "--db", str(path))[0] == 0
    (cp,) = show(capsys, path, "--metric", "cpu_s")["change_points"]
    assert (cp["agent"], cp["stamp"], cp["runs_before"], cp["runs_after"]) == (TOY, "20270101T060000Z", 6, 3)


def test_the_same_history_gives_the_same_change_points_every_time(db, capsys):
    """The permutations are seeded: the same series gives the same p-value (here one of a
    permutation test, a count over 501), another seed another one; so ``show`` repeats."""
    from tracecore_perf.history import changes
    from tracecore_perf.history.models import Settings

    values = [j * (1.05 if i >= 6 else 1.0) for i, j in enumerate(JITTER)]  # +5% in +-4%: a p near the level
    settings = Settings(pvalue=0.05, permutations=500, min_change=0.1, seed=1234)
    p = changes._p_value(values, 6, settings)
    assert p == changes._p_value(values, 6, settings) and (p * 501) == pytest.approx(round(p * 501))
    assert changes._p_value(values, 6, msgspec.structs.replace(settings, seed=1)) != p
    assert show(capsys, db) == show(capsys, db)


def test_label_order(tmp_path, capsys):
    runs = [clone_run(tmp_path, i) for i in range(3)]
    path = tmp_path / "h.sqlite"
    for run, label in zip(runs, ["v1.10", "v1.9", "v1.2"], strict=True):
        cli(capsys, "history", "add", str(run), "--db", str(path), "--label", label)
    assert [r["label"] for r in show(capsys, path, "--order", "label")["runs"]] == ["v1.2", "v1.9", "v1.10"]
    assert [r["label"] for r in show(capsys, path)["runs"]] == ["v1.10", "v1.9", "v1.2"]


def test_text_shows_series_and_change_points(db, capsys):
    code, out, _ = cli(capsys, "history", "show", "--db", str(db), "--metric", "cpu_s")
    assert code == 0
    assert "10 runs, 1 change points" in out
    assert "CHANGE slower from run 20270101T060000Z: cpu_s of agents/toy_agent.py on filesystem_hidden_config@1" in out


# --- check ---------------------------------------------------------------------------------------


def test_check_fails_on_a_regression_the_newest_run_sits_on(db, capsys):
    code, out, _ = cli(capsys, "history", "check", "--db", str(db), "--fail-on", "regression", "--format", "json")
    assert code == 1
    verdict = json.loads(out)
    assert verdict["ok"] is False and verdict["newest"] == "20270101T090000Z"
    (cp,) = verdict["regressions"]
    assert cp["stamp"] == "20270101T060000Z" and cp["agent"] == TOY
    assert cli(capsys, "history", "check", "--db", str(db))[0] == 0  # --fail-on never (the default) reports only


def test_check_formats(db, tmp_path, capsys, monkeypatch):
    code, out, _ = cli(capsys, "history", "check", "--db", str(db), "--fail-on", "regression")
    assert code == 1 and out.startswith("tracecore-perf history check 20270101T090000Z: REGRESSION")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, out, _ = cli(capsys, "history", "check", "--db", str(db), "--format", "github")
    title = "tracecore-perf history%3A cpu_s of agents/toy_agent.py on filesystem_hidden_config@1"
    assert re.search(rf"^::error title={title}::slower", out, re.M)
    assert "history check `20270101T090000Z`: REGRESSION" in summary.read_text()
    junit = tmp_path / "h.xml"
    code, out, _ = cli(capsys, "history", "check", "--db", str(db), "--format", "junit", "--junit-file", str(junit))
    assert out.startswith("FAIL: JUnit report written to")
    root = ET.parse(junit).getroot()
    assert root.get("failures") == "1" and root.get("name") == "tracecore-perf history check 20270101T090000Z"


def test_check_passes_when_the_newest_run_is_back_to_the_old_level(tmp_path, capsys):
    runs = [clone_run(tmp_path, i, toy_factor=2.0 if 6 <= i <= 9 else 1.0) for i in range(11)]
    path = tmp_path / "h.sqlite"
    cli(capsys, "history", "add", *map(str, runs), "--db", str(path))
    assert cli(capsys, "history", "check", "--db", str(path), "--fail-on", "regression")[0] == 0


def test_check_on_identical_runs_passes(tmp_path, capsys):
    runs = [clone_run(tmp_path, i) for i in range(8)]
    path = tmp_path / "h.sqlite"
    cli(capsys, "history", "add", *map(str, runs), "--db", str(path))
    code, out, _ = cli(capsys, "history", "check", "--db", str(path), "--fail-on", "regression", "--metric", "cpu_s")
    assert code == 0 and "PASS" in out


# --- the page ----------------------------------------------------------------------------------


def test_report_is_one_self_contained_page(tmp_path, stepped, capsys):
    path = tmp_path / "h.sqlite"
    hostile = "<script>window.__pwned=1</script>"
    cli(capsys, "history", "add", *map(str, stepped[1][:5]), "--db", str(path), "--label", hostile)
    cli(capsys, "history", "add", *map(str, stepped[1][5:]), "--db", str(path), "--label", "v2 & <b>bold</b>")
    page = tmp_path / "history.html"
    code, out, err = cli(capsys, "history", "report", "--db", str(path), "--output", str(page))
    assert code == 0, err
    html = page.read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html and "v2 &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    images = re.findall(r'<img[^>]*\ssrc="([^"]*)"', html)
    assert len(images) == 5 and all(src.startswith("data:image/png;base64,") for src in images)  # 4 rows + the run
    # every stamp, the change point, and the one run whose report sits beside it linked
    assert all(f"20270101T{i:02d}0000Z" in html for i in range(10))
    assert re.search(r'<tr class="slower"><td><a href="#run-20270101T060000Z">', html)
    links = re.findall(r'href="([^"#][^"]*)"', html)
    assert len(links) == 1 and (page.parent / links[0]).resolve() == (stepped[1][3] / "perf-report-20270101T030000Z.html")


def test_show_and_the_page_list_the_same_change_points_charted_or_not(db, tmp_path, capsys):
    """A page charting only wall-clock time still lists the CPU step ``show`` finds, marked
    "not charted"; each output says which metrics it looked at."""
    shown = show(capsys, db)
    found = sorted((cp["metric"], cp["agent"], cp["stamp"]) for cp in shown["change_points"])
    assert ("cpu_s", "agents/toy_agent.py", "20270101T060000Z") in found
    code, out, _ = cli(capsys, "history", "show", "--db", str(db))
    head = out.splitlines()[0]
    assert f"{len(found)} change points (looked for in " in head and all(m in head for m in ("cpu_s", "wall_clock_s"))
    page = tmp_path / "wall.html"
    code, _, err = cli(capsys, "history", "report", "--db", str(db), "--output", str(page), "--metric", "wall_clock_s")
    assert code == 0, err
    html = page.read_text(encoding="utf-8")
    listed = re.findall(r'<tr class="(?:slower|faster)"><td><a href="#run-(\w+)">.*?</td><td>\w+</td><td>(\w+)</td>', html)
    assert sorted((metric, stamp) for stamp, metric in listed) == sorted((m, stamp) for m, _, stamp in found)
    assert f"{len(found)} change points</h1>" in html and "charted: wall_clock_s" in html
    assert html.count("<td>not charted</td>") == sum(m != "wall_clock_s" for m, _, _ in found) > 0


# --- accept ------------------------------------------------------------------------------------


def test_an_accepted_slowdown_no_longer_fails_check_and_is_listed_as_accepted(db, tmp_path, capsys):
    gate = ["history", "check", "--db", str(db), "--fail-on", "regression"]
    assert cli(capsys, *gate)[0] == 1
    why = "the new checker, on purpose"
    code, out, err = cli(capsys, "history", "accept", "20270101T090000Z", "--db", str(db), "--reason", why)
    assert code == 0, err
    assert out.startswith("tracecore-perf history: 20270101T090000Z accepted: its change points and earlier ones")
    code, out, _ = cli(capsys, *gate, "--format", "json")
    verdict = json.loads(out)
    assert code == 0 and verdict["ok"] is True and verdict["regressions"] == []
    (cp,) = [c for c in verdict["other_change_points"] if c["agent"] == TOY]
    assert cp["stamp"] == "20270101T060000Z" and cp["direction"] == "slower"
    assert (cp["accepted"]["stamp"], cp["accepted"]["reason"]) == ("20270101T090000Z", "the new checker, on purpose")
    code, out, _ = cli(capsys, *gate)
    assert code == 0 and re.search(
        r"^  accepted   slower from run 20270101T060000Z: cpu_s of agents/toy_agent.py .*; accepted with run "
        r"20270101T090000Z: the new checker, on purpose$",
        out,
        re.M,
    ), out
    # show and the page still list it, marked
    (shown,) = show(capsys, db, "--metric", "cpu_s")["change_points"]
    assert shown["accepted"]["stamp"] == "20270101T090000Z"
    _, out, _ = cli(capsys, "history", "show", "--db", str(db), "--metric", "cpu_s")
    assert "20270101T090000Z" in out and "ACCEPTED at " in out and "CHANGE slower from run 20270101T060000Z" in out
    page = tmp_path / "page.html"
    assert cli(capsys, "history", "report", "--db", str(db), "--output", str(page))[0] == 0
    html = page.read_text(encoding="utf-8")
    assert html.count("accepted with run 20270101T090000Z: the new checker, on purpose") >= 1
    # accepted again: one acceptance, its reason replaced
    code, out, _ = cli(capsys, "history", "accept", "20270101T090000Z", "--db", str(db), "--reason", "still on purpose")
    assert code == 0 and "accepted again (its reason replaced)" in out
    assert [(a["stamp"], a["reason"]) for a in show(capsys, db)["acceptances"]] == [("20270101T090000Z", "still on purpose")]


def test_a_new_slowdown_after_the_accepted_run_still_fails(tmp_path, capsys):
    """Accepted by its label (a commit): the step it accepted stays accepted; a second step in
    later runs is a regression of its own."""
    path = tmp_path / "h.sqlite"
    factors = [1.0] * 6 + [2.0] * 4 + [4.0] * 4
    runs = [clone_run(tmp_path / "runs", i, toy_factor=f) for i, f in enumerate(factors)]
    for i, run in enumerate(runs[:10]):
        assert cli(capsys, "history", "add", str(run), "--db", str(path), "--label", f"commit{i:02d}")[0] == 0
    assert cli(capsys, "history", "accept", "commit09", "--db", str(path))[0] == 0
    assert cli(capsys, "history", "check", "--db", str(path), "--fail-on", "regression")[0] == 0
    assert cli(capsys, "history", "add", *map(str, runs[10:]), "--db", str(path))[0] == 0
    code, out, _ = cli(capsys, "history", "check", "--db", str(path), "--fail-on", "regression", "--format", "json")
    verdict = json.loads(out)
    assert code == 1
    assert [(cp["stamp"], cp["accepted"]) for cp in verdict["regressions"]] == [("20270101T100000Z", None)]
    found = [cp for cp in show(capsys, path, "--metric", "cpu_s")["change_points"] if cp["agent"] == TOY]
    assert [(cp["stamp"], (cp["accepted"] or {}).get("label")) for cp in found] == [
        ("20270101T060000Z", "commit09"),
        ("20270101T100000Z", None),
    ]


def test_accepting_a_run_the_history_does_not_hold_or_cannot_tell_apart_is_refused(tmp_path, db, stepped, capsys):
    before = digest(db)
    for ref, message in [
        ("20270101T990000Z", "no run '20270101T990000Z' in the history"),
        ("deadbeef", "no run 'deadbeef' in the history"),
    ]:
        code, out, err = cli(capsys, "history", "accept", ref, "--db", str(db))
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and message in lines[0] and out == "", err
    assert digest(db) == before
    # one label on two runs: which one is meant cannot be told
    twice = tmp_path / "twice.sqlite"
    for run in stepped[1][:2]:
        cli(capsys, "history", "add", str(run), "--db", str(twice), "--label", "v1.0")
    before = digest(twice)
    code, _, err = cli(capsys, "history", "accept", "v1.0", "--db", str(twice))
    assert code == 2 and "'v1.0' names 2 runs in the history" in err and "20270101T000000Z, 20270101T010000Z" in err
    assert digest(twice) == before
    code, _, err = cli(capsys, "history", "accept", "v1.0", "--db", str(tmp_path / "nowhere.sqlite"))
    assert code == 2 and "no history database at" in err and not (tmp_path / "nowhere.sqlite").exists()


def test_accept_migrates_a_schema_3_store_and_a_bad_run_leaves_it_as_it_was(tmp_path, db, capsys):
    """Schema 3 had no acceptances: reading commands refuse it until a writing one migrates it
    (one transaction); accept finds its run before it writes, so a bad one changes nothing."""
    old = tmp_path / "v3.sqlite"
    old.write_bytes(db.read_bytes())
    with sqlite3.connect(old) as conn:
        conn.execute("DROP TABLE accepted")
        conn.execute("ALTER TABLE group_figures RENAME TO row_figures")  # as schema 3 named it
        conn.execute("PRAGMA user_version = 3")
    conn.close()
    before = digest(old)
    code, _, err = cli(capsys, "history", "check", "--db", str(old))
    assert code == 2 and "history schema version 3 is older" in err
    assert cli(capsys, "history", "accept", "nothing-like-it", "--db", str(old))[0] == 2
    assert digest(old) == before
    code, _, err = cli(capsys, "history", "accept", "20270101T090000Z", "--db", str(old), "--reason", "known")
    assert code == 0, err
    with sqlite3.connect(old) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 5 == store.SCHEMA_VERSION
        assert conn.execute("SELECT stamp, reason FROM accepted").fetchall() == [("20270101T090000Z", "known")]
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 10
    conn.close()
    assert cli(capsys, "history", "check", "--db", str(old), "--fail-on", "regression")[0] == 0


# --- bad input -----------------------------------------------------------------------------------


def _foreign(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        conn.execute("INSERT INTO invoices (total) VALUES (9.5)")
    conn.close()


BAD_DB = {
    "garbage": (lambda p: p.write_bytes(b"this is no database at all, just text " * 200), "not a readable SQLite database"),
    "foreign": (_foreign, "not a tracecore-perf history database (tables invoices)"),
    "newer": (None, "history schema version 99 is newer than this tracecore-perf reads"),
}


@pytest.mark.parametrize("case", list(BAD_DB))
@pytest.mark.parametrize("action", ["add", "show", "check", "report", "accept"])
def test_a_database_history_cannot_use_is_refused_untouched(tmp_path, db, stepped, capsys, case, action):
    make, message = BAD_DB[case]
    path = tmp_path / "bad.sqlite"
    if make is None:
        path.write_bytes(db.read_bytes())
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA user_version = 99")
        conn.close()
    else:
        make(path)
    before = digest(path)
    args = {
        "add": [str(stepped[1][0])],
        "show": [],
        "check": ["--fail-on", "regression"],
        "report": ["--output", str(tmp_path / "page.html")],
        "accept": ["20270101T000000Z"],
    }[action]
    code, out, err = cli(capsys, "history", action, *args, "--db", str(path))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tracecore-perf: error: ") and message in lines[0], err
    assert digest(path) == before
    assert not (tmp_path / "page.html").exists()


BAD_ARGS = {
    "not a run": (["add", "yesterday"], "no such run, run directory or artifact: yesterday"),
    "a folder without a run": (["add", "{empty}"], "holds no published run"),
    "unknown metric": (["show", "--metric", "latency"], "unknown metric 'latency'"),
    "unknown metric (check)": (["check", "--metric", "cpu"], "unknown metric 'cpu'"),
    "no database": (["show", "--db", "{missing}"], "no history database at"),
    "db is a directory": (["show", "--db", "{empty}"], "--db is a directory"),
    "report into nowhere": (["report", "--output", "{missing}/x/page.html"], "--output must be a file in an existing folder"),
    "no action": ([], "the following arguments are required: ACTION"),
    "a label of two lines": (["add", "yesterday", "--label", "v1\n\x1b[31mv2"], "only printable characters"),
    "a label of a page": (["add", "yesterday", "--label", "x" * 201], "at most 200 characters"),
    "permutations without end": (["show", "--permutations", "100000000"], "at most 10000"),
    "accept without a run": (["accept"], "the following arguments are required: RUN"),
    "a reason of two lines": (["accept", "20270101T000000Z", "--reason", "ok\n\x1b[2Jfine"], "only printable characters"),
}


@pytest.mark.parametrize("case", list(BAD_ARGS))
def test_bad_arguments_are_one_line_exit_2_and_leave_the_database_alone(tmp_path, db, capsys, case):
    (tmp_path / "empty").mkdir()
    args = [a.format(empty=tmp_path / "empty", missing=tmp_path / "missing") for a in BAD_ARGS[case][0]]
    before = digest(db)
    code, out, err = cli(capsys, "history", *args, *([] if "--db" in args or not args else ["--db", str(db)]))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and BAD_ARGS[case][1] in lines[0], err
    assert digest(db) == before


def test_another_run_with_a_stamp_already_there_is_refused_not_dropped(tmp_path, db, stepped, capsys):
    """Two runs in different folders can share a stamp (they started in the same second):
    the second is refused, by name, and nothing of the command is added."""
    twin = clone_run(tmp_path / "elsewhere", 0)
    manifest = next(twin.glob("perf-manifest-*.json"))
    data = json.loads(manifest.read_text())
    data["generated_at"] = "2027-01-01T00:00:00.500000+00:00"  # the same second, another run
    manifest.write_text(json.dumps(data))
    newcomer = clone_run(tmp_path / "elsewhere", 11)
    before = digest(db)
    code, _, err = cli(capsys, "history", "add", str(newcomer), str(twin), "--db", str(db))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "another run with stamp 20270101T000000Z is already in the history" in lines[0], err
    assert str(twin.resolve()) in lines[0]
    assert digest(db) == before  # the newcomer given first is not added either


def test_an_unfinished_run_is_refused_until_it_is_finished(tmp_path, capsys):
    """An interrupted run's figures cover only what it got to, and a run is added once: so it
    is refused, saying how to finish it."""
    run = clone_run(tmp_path, 0)
    summary = next(run.glob("perf-summary-*.json"))
    data = json.loads(summary.read_text())
    data["status"] = "interrupted"
    summary.write_text(json.dumps(data))
    path = tmp_path / "h.sqlite"
    code, _, err = cli(capsys, "history", "add", str(run), "--db", str(path))
    assert code == 2
    assert "run 20270101T000000Z is interrupted: finish it first (python -m tracecore_perf --resume" in err
    assert not path.exists() or sqlite3.connect(path).execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0


def test_a_bad_run_among_good_ones_adds_none(tmp_path, stepped, capsys):
    path = tmp_path / "h.sqlite"
    code, _, err = cli(capsys, "history", "add", str(stepped[1][0]), "no-such-run", "--db", str(path))
    assert code == 2 and "no-such-run" in err
    assert not path.exists() or sqlite3.connect(path).execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0


def test_run_with_history_refuses_a_foreign_database_before_any_episode(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "theirs.sqlite"
    _foreign(path)
    before = digest(path)
    code, out, err = cli(capsys, "--episodes", "2", "--output-dir", str(tmp_path / "out"), "--history", str(path))
    assert code == 2 and "not a tracecore-perf history database" in err
    assert digest(path) == before and not (tmp_path / "out").exists()


def test_run_with_history_makes_the_folder_or_refuses_before_any_episode(tmp_path, capsys, monkeypatch):
    """`--history PATH` in a folder that does not exist yet: made, as the run's output folder
    is; one that cannot be made (below a file) is bad input, before any episode."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("")
    code, _, err = cli(capsys, "--episodes", "2", "--output-dir", str(tmp_path / "out"), "--history", "a-file/h.sqlite")
    assert code == 2 and "--history: cannot create the folder of a-file/h.sqlite" in err
    assert not (tmp_path / "out").exists()
    from tracecore_perf.history.store import preflight

    preflight(tmp_path / "new" / "deeper" / "h.sqlite")
    assert (tmp_path / "new" / "deeper").is_dir() and not (tmp_path / "new" / "deeper" / "h.sqlite").exists()


# --- schema versions -------------------------------------------------------------------------------


def test_an_older_schema_is_migrated_step_by_step(tmp_path, db, monkeypatch):

    old = tmp_path / "old.sqlite"
    old.write_bytes(db.read_bytes())
    step = ["ALTER TABLE runs ADD COLUMN note TEXT", "UPDATE runs SET note = 'migrated'"]
    newer = store.SCHEMA_VERSION + 1
    monkeypatch.setattr(store, "MIGRATIONS", [*store.MIGRATIONS, step])
    monkeypatch.setattr(store, "SCHEMA_VERSION", newer)
    with pytest.raises(Exception, match="older; `history add` migrates it"):
        store.open_store(old, write=False)
    with store.open_store(old, write=True) as opened:
        assert len(opened.runs()) == 10
    with sqlite3.connect(old) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == newer
        assert {n for (n,) in conn.execute("SELECT note FROM runs")} == {"migrated"}
    conn.close()


def test_a_failed_migration_leaves_the_database_as_it_was(tmp_path, db, monkeypatch):

    old = tmp_path / "old.sqlite"
    old.write_bytes(db.read_bytes())
    before = digest(old)
    broken = ["ALTER TABLE runs ADD COLUMN note TEXT", "SELECT * FROM nowhere"]
    monkeypatch.setattr(store, "MIGRATIONS", [*store.MIGRATIONS, broken])
    monkeypatch.setattr(store, "SCHEMA_VERSION", store.SCHEMA_VERSION + 1)
    with pytest.raises(Exception, match="nowhere"):
        store.open_store(old, write=True)
    assert digest(old) == before


def test_a_version_2_store_keeps_each_runs_hardware_id_as_its_machine_id(tmp_path):
    """Version 2 kept two ids per run: machine_class (hardware, Python, TraceCore mixed) and
    host_class (the hardware alone). Version 3 keeps one: the hardware's, as machine_id."""
    old = tmp_path / "v2.sqlite"
    with sqlite3.connect(old) as conn:
        for statement in [s for step in store.MIGRATIONS[:2] for s in step]:
            conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {store.APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 2")
        conn.execute(
            "INSERT INTO runs (stamp, generated_at, added_at, status, episodes, workers, isolation, tracecore_version, "
            "python_version, machine_class, host_class, cpu_model, source_dir) VALUES ('20260101T000000Z', "
            "'2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00', 'complete', 24, 4, 'forkserver', '1.1.3', '3.11.9', "
            "'mixedmixedmi', 'hardwarehard', 'Some CPU', '/tmp')"
        )
    conn.close()
    with store.open_store(old, write=True) as opened:
        (run,) = opened.runs()
    assert run.machine_id == "hardwarehard"
    with sqlite3.connect(old) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    conn.close()
    assert "machine_id" in columns and not {"machine_class", "host_class"} & columns


# A store as version 4 of tracecore-perf wrote it, statement by statement.
V4_SCHEMA = [
    """CREATE TABLE runs (stamp TEXT PRIMARY KEY, generated_at TEXT NOT NULL, added_at TEXT NOT NULL, label TEXT,
        status TEXT NOT NULL, episodes INTEGER NOT NULL, workers INTEGER NOT NULL, isolation TEXT NOT NULL, warmup INTEGER,
        tracecore_version TEXT NOT NULL, python_version TEXT NOT NULL, machine_id TEXT NOT NULL, cpu_model TEXT NOT NULL,
        throughput_eps REAL, harness_rss_bytes INTEGER, workers_rss_bytes INTEGER, source_dir TEXT NOT NULL,
        instructions INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE row_figures (stamp TEXT NOT NULL REFERENCES runs(stamp) ON DELETE CASCADE, agent TEXT NOT NULL,
        task_ref TEXT NOT NULL, episodes INTEGER NOT NULL, cpu_s REAL, wall_clock_s REAL, wall_clock_p95_s REAL,
        success_rate REAL NOT NULL, artifact_bytes REAL, episode_rss_bytes INTEGER, instructions REAL,
        PRIMARY KEY (stamp, agent, task_ref))""",
    "CREATE INDEX runs_by_time ON runs(generated_at)",
    "CREATE TABLE accepted (stamp TEXT PRIMARY KEY REFERENCES runs(stamp) ON DELETE CASCADE, reason TEXT, "
    "accepted_at TEXT NOT NULL)",
    f"PRAGMA application_id = {store.APPLICATION_ID}",
    "PRAGMA user_version = 4",
    "INSERT INTO runs (stamp, generated_at, added_at, status, episodes, workers, isolation, tracecore_version, python_version, "
    "machine_id, cpu_model, source_dir) VALUES ('20260101T000000Z', '2026-01-01T00:00:00+00:00', "
    "'2026-01-01T00:00:00+00:00', 'complete', 24, 4, 'forkserver', '1.1.3', '3.11.9', 'hardwarehard', 'Some CPU', '/tmp')",
    "INSERT INTO row_figures (stamp, agent, task_ref, episodes, cpu_s, success_rate) "
    "VALUES ('20260101T000000Z', 'agents/toy_agent.py', 'filesystem_hidden_config@1', 6, 0.0125, 1.0)",
]


def test_a_version_4_store_keeps_its_figures_per_group_under_the_new_name(tmp_path, capsys):
    """Version 4 kept a run's figures per (agent, task_ref) in ``row_figures``; version 5 names
    the table for what it holds, ``group_figures``. Reading commands refuse the old store
    unchanged; a writing one renames the table, figures and all, in one step."""
    old = tmp_path / "v4.sqlite"
    with sqlite3.connect(old) as conn:
        for statement in V4_SCHEMA:
            conn.execute(statement)
    conn.close()
    before = digest(old)
    code, _, err = cli(capsys, "history", "show", "--db", str(old))
    assert code == 2 and "history schema version 4 is older" in err
    assert digest(old) == before

    with store.open_store(old, write=True) as opened:
        (group,) = opened.groups()
        (run,) = opened.runs()
    assert (group.stamp, group.agent, group.task_ref, group.episodes, group.cpu_s) == (
        "20260101T000000Z",
        "agents/toy_agent.py",
        "filesystem_hidden_config@1",
        6,
        0.0125,
    )
    assert run.machine_id == "hardwarehard"
    with sqlite3.connect(old) as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 5 == store.SCHEMA_VERSION
    conn.close()
    assert tables == {"runs", "group_figures", "accepted"}
    assert cli(capsys, "history", "show", "--db", str(old))[0] == 0
