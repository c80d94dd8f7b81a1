"""``matrix`` here (no --ray): cells one after another in one process, each an ordinary run
that check/compare take; perf-matrix-<stamp>.json and --json; compare between cells that share
their rows; --resume reruns only the cells without a finished published run."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from conftest import AGENTS, communicate, harness, harness_env, published, run_watched, wait_for

pytestmark = pytest.mark.slow  # every test here runs real episodes

TOY = '{agent = "agents/toy_agent.py", task_ref = "filesystem_hidden_config@1", seed = 42}'
RATE = '{agent = "agents/rate_limit_agent.py", task_ref = "rate_limited_api@1", seed = 11}'
EPISODES = 6  # compare needs 5 successful episodes a side for a ratio
MATRIX = f"""
episodes = {EPISODES}
workers = 2
rows = [{TOY}]

[[cells]]
name = "a"

[[cells]]
name = "b"          # same rows and setup as a: compared
warmup = 0

[[cells]]
name = "one-worker" # same rows, another setup: compare refuses, and says so
workers = 1

[[cells]]
name = "rate"       # other rows: not compared
rows = [{RATE}]
"""


def utc(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    assert when.utcoffset() == timedelta(0), text
    return when


@pytest.fixture(scope="module")
def matrix(tmp_path_factory) -> tuple[Path, dict, subprocess.CompletedProcess]:
    work = tmp_path_factory.mktemp("matrix-local")
    (work / "cells.toml").write_text(MATRIX)
    done = harness("matrix", "cells.toml", "--output-dir", "out", "--json", cwd=work)
    assert done.returncode == 0, done.stderr
    return work, json.loads(done.stdout), done


def test_json_names_every_cell_with_utc_times_and_its_summary(matrix):
    _, payload, _ = matrix
    assert set(payload) >= {"ok", "stamp", "cells"} and payload["ok"] is True
    assert [c["name"] for c in payload["cells"]] == ["a", "b", "one-worker", "rate"]
    for cell in payload["cells"]:
        assert set(cell) >= {"name", "stamp", "status", "node", "started_at", "finished_at", "summary"}
        assert cell["status"] == "ok" and cell["node"] == "local"
        assert utc(cell["started_at"]) < utc(cell["finished_at"])
        assert cell["summary"]["episodes"] == EPISODES and cell["summary"]["stamp"] == cell["stamp"]


def test_cells_ran_one_after_another(matrix):
    _, payload, _ = matrix
    spans = sorted((utc(c["started_at"]), utc(c["finished_at"])) for c in payload["cells"])
    assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False))


def test_each_cell_is_an_ordinary_run_that_check_takes(matrix):
    work, payload, _ = matrix
    matrix_dir = work / "out" / f"matrix-{payload['stamp']}"
    for cell in payload["cells"]:
        folder = matrix_dir / cell["name"]
        stamp = cell["stamp"]
        kinds = sorted(p.name.split("-")[1] for p in folder.glob(f"perf-*-{stamp}.json"))
        assert kinds == ["manifest", "metrics", "samples", "series", "summary"]
        assert (folder / f"run-{stamp}" / "series.jsonl").is_file()
    checked = harness("check", str(matrix_dir / "a"), cwd=work)
    assert checked.returncode == 0, checked.stderr
    compared = harness("compare", str(matrix_dir / "a"), str(matrix_dir / "b"), cwd=work)
    assert compared.returncode == 0, compared.stderr


def test_every_cell_has_a_stamp_of_its_own_so_history_takes_them_all(matrix):
    """Cells often start within one second; each cell's number is its stamp's suffix, so no
    two cells share a stamp and `history add` stores every one."""
    work, payload, _ = matrix
    stamps = [cell["stamp"] for cell in payload["cells"]]
    assert len(set(stamps)) == len(stamps) == 4
    assert [stamp.rsplit("-", 1)[1] for stamp in stamps] == ["1", "2", "3", "4"]
    matrix_dir = work / "out" / f"matrix-{payload['stamp']}"
    folders = [str(matrix_dir / cell["name"]) for cell in payload["cells"]]
    added = harness("history", "add", *folders, "--db", "cells.sqlite", cwd=work)
    assert added.returncode == 0, added.stderr
    assert added.stdout.count(" added ") == 4, added.stdout


def test_perf_matrix_json_and_the_comparisons_of_cells_sharing_rows(matrix):
    work, payload, done = matrix
    path = work / "out" / f"matrix-{payload['stamp']}" / f"perf-matrix-{payload['stamp']}.json"
    assert payload["matrix"] == str(path.relative_to(work)) or Path(payload["matrix"]).resolve() == path.resolve()
    result = json.loads(path.read_text())
    assert result["backend"] == "local" and result["nodes"] == ["local"] and result["ok"] is True
    for cell in result["cells"]:
        assert cell["throughput_eps"] > 0 and cell["p50_wall_clock_s"] <= cell["p95_wall_clock_s"]
        assert cell["failure_count"] == 0 and cell["machine_id"]
    pairs = {(c["baseline"], c["current"]): c for c in result["comparisons"]}
    assert set(pairs) == {("a", "b"), ("a", "one-worker"), ("b", "one-worker")}  # never "rate": other rows
    assert pairs[("a", "b")]["refused"] is None and pairs[("a", "b")]["verdict"]
    assert pairs[("a", "b")]["comparison"]["baseline"] and pairs[("a", "b")]["different_machine_class"] is False
    assert "set up differently (workers 2 vs 1)" in pairs[("a", "one-worker")]["refused"]


def test_json_comparisons_carry_compares_numbers(matrix):
    """``matrix --json`` carries each comparison's figures as ``compare --format json`` does."""
    work, payload, _ = matrix
    (ab,) = [c for c in payload["comparisons"] if (c["baseline"], c["current"]) == ("a", "b")]
    (row,) = ab["comparison"]["rows"]
    # whatever the host made of it (b is the cold cell): the pair's flags are its rows' verdicts
    assert ab["comparison"]["metric"] == "cpu_s" and ab["regression"] is row["regression"] and ab["ok"] is not row["regression"]
    assert row["ratio"]["value"] > 0 and row["ratio"]["low"] <= row["ratio"]["value"] <= row["ratio"]["high"]
    assert 0 <= row["p_value"] <= 1 and row["metric"] == "cpu_s"
    matrix_dir = work / "out" / f"matrix-{payload['stamp']}"
    compared = harness("compare", str(matrix_dir / "a"), str(matrix_dir / "b"), "--format", "json", cwd=work)
    assert json.loads(compared.stdout)["rows"][0]["ratio"] == row["ratio"]


def test_one_machine_has_one_id_in_run_compare_matrix_and_history(matrix):
    work, payload, _ = matrix
    matrix_dir = work / "out" / f"matrix-{payload['stamp']}"
    in_matrix = {cell["machine_id"] for cell in payload["cells"]}
    in_manifests = {published(matrix_dir / cell["name"], "manifest")["machine_class"] for cell in payload["cells"]}
    compared = json.loads(harness("compare", str(matrix_dir / "a"), str(matrix_dir / "b"), "--format", "json", cwd=work).stdout)
    db = work / "one-id.sqlite"
    assert harness("history", "add", str(matrix_dir / "a"), str(matrix_dir / "rate"), "--db", str(db), cwd=work).returncode == 0
    shown = json.loads(harness("history", "show", "--db", str(db), "--format", "json", cwd=work).stdout)
    in_history = {run["machine_id"] for run in shown["runs"]} | {s["machine_id"] for s in shown["series"]}
    pairs = {machine for c in payload["comparisons"] for machine in c["machine_ids"]}
    assert len(in_matrix) == 1 and in_matrix == in_manifests == set(compared["machine_ids"]) == in_history == pairs


def test_resume_reruns_only_the_cells_without_a_published_run(tmp_path: Path, matrix):
    work, payload, _ = matrix
    matrix_dir = tmp_path / f"matrix-{payload['stamp']}"
    shutil.copytree(work / "out" / matrix_dir.name, matrix_dir)
    shutil.rmtree(matrix_dir / "b")  # as if b had never run
    for p in (matrix_dir / "rate").glob("perf-*.json"):  # as if rate had stopped before publishing
        p.unlink()
    done = harness("matrix", "--resume", str(matrix_dir), "--json", cwd=work)
    assert done.returncode == 0, done.stderr
    again = {c["name"]: c for c in json.loads(done.stdout)["cells"]}
    before = {c["name"]: c for c in payload["cells"]}
    for name in ("a", "one-worker"):
        assert again[name]["stamp"] == before[name]["stamp"] and again[name]["started_at"] == before[name]["started_at"]
    assert again["b"]["status"] == again["rate"]["status"] == "ok"
    assert again["b"]["summary"]["episodes"] == EPISODES and utc(again["b"]["started_at"]) > utc(
        before["one-worker"]["finished_at"]
    )
    assert (matrix_dir / "rate").glob("perf-manifest-*.json")


def test_ray_without_the_extra_exits_2_with_the_install_command(tmp_path: Path):
    """A real interpreter in which ``import ray`` fails, as in an environment without the extra."""
    shadow = tmp_path / "shadow" / "ray"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    (tmp_path / "cells.toml").write_text(f'episodes = 1\nrows = [{TOY}]\n[[cells]]\nname = "a"\n')
    done = run_watched(
        [sys.executable, "-m", "tracecore_perf", "matrix", "cells.toml", "--ray", "127.0.0.1:9", "--output-dir", "out"],
        cwd=tmp_path, capture_output=True, text=True,
        env={**__import__("os").environ, "PYTHONPATH": str(shadow.parent)},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "pip install -e '.[ray]'" in done.stderr and done.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_sigterm_stops_the_matrix_as_ctrl_c_does_and_resume_finishes_it(tmp_path: Path):
    """A CI timeout or a service manager sends SIGTERM: the matrix stops (143), writes every
    cell's state and prints the --resume command; --resume runs the rest; a --resume with
    nothing left to run says so and leaves the record as it was."""
    gate = tmp_path / "gate_agent.py"
    shutil.copyfile(AGENTS / "gate_agent.py", gate)
    held = f'{{agent = "{gate}", task_ref = "filesystem_hidden_config@1", seed = 1}}'
    (tmp_path / "cells.toml").write_text(
        f"episodes = 2\nworkers = 1\nrows = [{TOY}]\n"
        f'[[cells]]\nname = "first"\n[[cells]]\nname = "held"\nrows = [{held}]\n[[cells]]\nname = "last"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracecore_perf", "matrix", "cells.toml", "--output-dir", "out", "--no-progress"],
        cwd=tmp_path,
        env=harness_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # the held cell's episode is running
        wait_for(lambda: list(tmp_path.glob("gate-started-*")), proc=proc, watch=[tmp_path], what="the held episode")
        proc.send_signal(signal.SIGTERM)
        out, err = communicate(proc, watch=[tmp_path])
    finally:
        (tmp_path / "gate-open").touch()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    (matrix_dir,) = (tmp_path / "out").glob("matrix-*")
    record = json.loads(next(matrix_dir.glob("perf-matrix-*.json")).read_text())
    status = {cell["name"]: cell["status"] for cell in record["cells"]}
    assert status["first"] == "ok" and status["held"] in ("interrupted", "pending") and status["last"] == "pending", status
    assert f"matrix --resume {matrix_dir.relative_to(tmp_path)}" in err.strip().splitlines()[-1]
    assert "held" in out  # the table was printed

    resumed = harness("matrix", "--resume", str(matrix_dir), "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert {cell["name"]: cell["status"] for cell in json.loads(resumed.stdout)["cells"]} == dict.fromkeys(status, "ok")

    path = next(matrix_dir.glob("perf-matrix-*.json"))
    before = path.read_bytes()
    again = harness("matrix", "--resume", str(matrix_dir), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "nothing to resume" in again.stderr
    assert path.read_bytes() == before
