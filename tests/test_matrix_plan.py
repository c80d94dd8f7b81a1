"""The matrix file, in-process (no episode, no process): every cell's settings resolved and
held to the run's own bounds; bad input is one line, exit 2, nothing written, no cell started."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracecore_perf.cli import main
from tracecore_perf.errors import UsageError
from tracecore_perf.matrix import plan
from tracecore_perf.matrix.models import CellOutcome, MatrixResult
from tracecore_perf.matrix.results import table
from tracecore_perf.run.scenario import DEFAULT_SCENARIO

TOY = '{agent = "agents/toy_agent.py", task_ref = "filesystem_hidden_config@1", seed = 42}'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cells.toml"
    path.write_text(text)
    return path


def test_defaults_then_cells_resolve_each_setting(tmp_path: Path):
    scenario = tmp_path / "rows.json"
    scenario.write_text('[{"agent": "agents/toy_agent.py", "task_ref": "filesystem_hidden_config@1", "seed": 3}]')
    path = write(
        tmp_path,
        f"""
episodes = 8
workers = 2
timeout = 30
rows = [{TOY}]

[[cells]]
name = "a"

[[cells]]
name = "b"
workers = 1
strict_spec = true
isolation = "spawn"
warmup = 0
python = "/opt/next/bin/python"

[[cells]]
name = "c"
scenario = "{scenario}"
""",
    )
    cells = {c.name: c for c in plan.load(path).cells}
    a = cells["a"].settings
    assert (a.episodes, a.workers, a.timeout, a.python) == (8, 2, 30.0, None)
    assert cells["a"].scenario_source == "inline" and cells["a"].rows[0].seed == 42
    b = cells["b"].settings
    assert (b.workers, b.strict_spec, b.isolation, b.warmup, b.python) == (1, True, "spawn", 0, "/opt/next/bin/python")
    assert cells["c"].rows[0].seed == 3 and cells["c"].scenario_source == str(scenario)


def test_without_rows_a_cell_runs_the_default_scenario(tmp_path: Path):
    (cell,) = plan.load(write(tmp_path, '[[cells]]\nname = "x"\n')).cells
    assert cell.rows == list(DEFAULT_SCENARIO) and cell.settings.episodes == 24 and cell.settings.workers == 4


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('[[cells]]\nname = "a"\nepisodez = 4\n', "cell 'a': Object contains unknown field `episodez`"),
        ('verbose = true\n[[cells]]\nname = "a"\n', "unknown field `verbose`"),
        ('[[cells]]\nname = "a"\n[[cells]]\nname = "a"\n', "two cells are named 'a'"),
        ('[[cells]]\nname = "a"\n[[cells]]\nname = "A"\n', "two cells are named 'A'"),
        ('[[cells]]\nname = "a"\nepisodes = 0\n', "cell 'a': episodes: Expected `int` >= 1"),
        ('[[cells]]\nname = "a"\nworkers = "four"\n', "cell 'a': workers: Expected `int | null`, got `str`"),
        ('[[cells]]\nname = "a"\ntimeout = -1\n', "cell 'a': timeout: Expected `float` >= 0.01"),
        ('[[cells]]\nname = "a"\ntimeout = inf\n', "timeout must be a finite number"),
        ('[[cells]]\nname = "a"\nisolation = "thread"\n', "cell 'a': isolation: Invalid enum value 'thread'"),
        ('[[cells]]\nname = "a"\nwarmup = -1\n', "cell 'a': warmup: Expected `int` >= 0"),
        ('[[cells]]\nname = "../up"\n', "cell '../up': name: Expected `str` matching regex"),
        ('[[cells]]\nname = "a"\nscenario = "nowhere.toml"\n', "cell 'a': scenario file not found: nowhere.toml"),
        (f'[[cells]]\nname = "a"\nscenario = "x.toml"\nrows = [{TOY}]\n', "not both"),
        ('[[cells]]\nname = "a"\nrows = [{agent = "a.py"}]\n', "cell 'a': rows[0]: Object missing required field `task_ref`"),
        ('[[cells]]\nname = "a"\nrows = []\n', "rows is empty"),
        ("episodes = 4\n", "has no [[cells]]"),
        ("[[cells]\n", "not valid TOML"),
    ],
)
def test_bad_matrix_file_is_one_line_exit_2_nothing_written(tmp_path: Path, capsys, text: str, says: str):
    out = tmp_path / "out"
    code = main(["matrix", str(write(tmp_path, text)), "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert says in err, err
    assert err.count("\n") == 1 and err.startswith("tracecore-perf: error: ")
    assert not out.exists()


def test_missing_matrix_file_and_flag_misuse(tmp_path: Path, capsys):
    assert main(["matrix", str(tmp_path / "none.toml")]) == 2
    assert "matrix file not found" in capsys.readouterr().err
    assert main(["matrix"]) == 2
    assert "give the matrix FILE" in capsys.readouterr().err
    assert main(["matrix", "x.toml", "--resume", str(tmp_path)]) == 2
    assert "drop FILE" in capsys.readouterr().err
    assert main(["matrix", "--resume", str(tmp_path)]) == 2
    assert "not a matrix folder" in capsys.readouterr().err
    assert main(["matrix", "x.toml", "--retries", "1"]) == 2
    assert "--retries is for --ray" in capsys.readouterr().err


def test_ray_address_forms_are_checked_before_any_connection(tmp_path: Path, monkeypatch):
    from tracecore_perf.matrix.ray_backend import parse_address

    assert parse_address("10.0.0.5:6380") == ("10.0.0.5", 6380)
    assert parse_address("head") == ("head", 6379)
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.7:6379")
    assert parse_address("auto") == ("10.0.0.7", 6379)
    monkeypatch.delenv("RAY_ADDRESS")
    bad_ones = [("auto", "RAY_ADDRESS"), ("ray://head:10001", "not ray://"), ("head:x", "not a port"), (":6379", "HOST:PORT")]
    for bad, says in bad_ones:
        with pytest.raises(UsageError, match=says):
            parse_address(bad)


def test_table_names_each_cell_its_error_and_each_comparison():
    from tracecore_perf.matrix.models import CellComparison

    result = MatrixResult(
        ok=False, stamp="20260101T000000Z", backend="ray", address="h:6379", source="m.toml",
        started_at="2026-01-01T00:00:00+00:00", finished_at=None, wall_s=12.5, nodes=["n1", "n2"],
        cells=[
            CellOutcome(name="a", status="ok", node="n1" * 10, started_at="2026-01-01T00:00:01+00:00",
                        finished_at="2026-01-01T00:00:09+00:00", throughput_eps=30.0, failure_count=0, stamp="s1"),
            CellOutcome(name="b", status="failed", error="NodeDiedError: the node died"),
        ],
        comparisons=[CellComparison(baseline="a", current="c", verdict="no change", different_machine_class=True)],
    )  # fmt: skip
    text = table(result)
    assert "a     ok      n1n1n1n1  00:00:01  00:00:09  30.0" in text
    assert "b: NodeDiedError: the node died" in text
    assert "compare a -> c: no change [DIFFERENT MACHINES]" in text
    assert text.endswith("matrix 20260101T000000Z: 1/2 cells ok on 2 nodes, 12.5 s")


def test_only_the_ray_backend_imports_ray_and_only_inside_functions():
    import ast

    package = Path(__file__).resolve().parents[1] / "tracecore_perf"
    importers = {}
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name == "ray" or name.startswith("ray.") for name in names):
                importers.setdefault(path.relative_to(package).as_posix(), []).append(node.col_offset)
    assert set(importers) == {"matrix/ray_backend.py"}
    assert all(offset > 0 for offset in importers["matrix/ray_backend.py"])  # never at module level
