"""The command line itself, without starting an episode: help, version, typos, defaults,
what a baseline can be, and the layering (no import cycle; no stage imports the CLI)."""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import os
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import tracecore_perf
from tracecore_perf import cli, defaults
from tracecore_perf.cli.args import COMMANDS
from tracecore_perf.cli.run import failures_line, parse, resume_command

from conftest import REPO, run_watched

PACKAGE = Path(tracecore_perf.__file__).parent
SLICE = REPO / "deliverables" / "perf" / "baseline-slice"
SLICE_STAMP = "20261125T184431Z"


@contextlib.contextmanager
def _chdir(path: Path):
    """contextlib.chdir, which Python 3.10 lacks."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def harness(*args: str, cwd: Path, env: dict | None = None) -> SimpleNamespace:
    """``tracecore-perf ARGS`` in this process (``cli.main``), as the command line would run it
    in ``cwd``: the exit code and what it printed. These commands start no episode."""
    out, err = io.StringIO(), io.StringIO()
    with _chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(args))
        except SystemExit as exit_:  # argparse's --help and --version
            code = exit_.code if isinstance(exit_.code, int) else 0
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages([str(PACKAGE)], prefix="tracecore_perf."))


def _parsers() -> dict[str, argparse.ArgumentParser]:
    return {name: cli.subcommand(name).run_parser() if name == "run" else cli.subcommand(name).parser() for name in COMMANDS}


# --- what a user sees -------------------------------------------------------------------


def test_help_names_every_subcommand_with_a_line_each(tmp_path):
    done = harness("--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for name, line in COMMANDS.items():
        assert re.search(rf"^  {name} +{re.escape(line)}$", done.stdout, re.MULTILINE), done.stdout
    assert set(COMMANDS) == {
        "run",
        "check",
        "compare",
        "ab",
        "continuous",
        "bisect",
        "report",
        "matrix",
        "history",
        "export",
        "explain",
    }


def test_version(tmp_path):
    done = harness("--version", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == f"tracecore-perf {tracecore_perf.__version__}"


@pytest.mark.parametrize(("typo", "meant"), [("chek", "check"), ("compre", "compare"), ("reprot", "report"), ("rn", "run")])
def test_a_mistyped_subcommand_suggests_the_right_one(tmp_path, typo, meant):
    done = harness(typo, "RUN", cwd=tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line == f"tracecore-perf: error: unknown command {typo!r}; did you mean {meant!r}?"
    assert not (tmp_path / "deliverables").exists()


def test_an_unknown_word_lists_the_commands(tmp_path):
    done = harness("frobnicate", cwd=tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "unknown command 'frobnicate'" in line and "check" in line and "report" in line


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["--wokers", "3"], "unknown option --wokers; did you mean --workers?"),
        (["--episode", "3"], "unknown option --episode; did you mean --episodes?"),
        (["--episode=3"], "unknown option --episode; did you mean --episodes?"),
        (["run", "--work", "3"], "unknown option --work; did you mean --workers?"),
        (["check", "RUN", "--thresh", "t.toml"], "unknown option --thresh; did you mean --thresholds?"),
        (["history", "add", "--dbb", "h.sqlite"], "unknown option --dbb; did you mean --db?"),
        (["export", "RUN", "--zzzzzzzz"], "unknown option --zzzzzzzz (--help lists the options)"),
    ],
)
def test_a_mistyped_or_shortened_flag_is_one_line_naming_the_closest_flag(tmp_path, argv, line):
    done = harness(*argv, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"tracecore-perf: error: {line}"]
    assert not (tmp_path / "deliverables").exists()


def _every_parser():
    from tracecore_perf.cli.reference import _subparsers

    for name, parser in _parsers().items():
        yield name, parser
        for action, sub in _subparsers(parser).items():
            yield f"{name} {action}", sub


def test_no_parser_takes_an_abbreviated_flag():
    for name, parser in _every_parser():
        assert parser.allow_abbrev is False, name


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_shows_a_percent_sign_once(name):
    done = harness(*([] if name == "run" else [name]), "--help", cwd=Path.cwd())
    assert done.returncode == 0, done.stderr
    assert "%%" not in done.stdout


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_flag_has_help_that_shows_its_default(name):
    parser = _parsers()[name]
    formatter = parser._get_formatter()
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "version"):
            continue
        shown = formatter._expand_help(action)
        assert action.help and "default" in shown, (name, action.option_strings, shown)


def test_defaults_come_from_the_one_table():
    args, given = parse([])
    assert given == []
    assert (args.episodes, args.workers, args.timeout, args.output_dir) == (
        defaults.EPISODES,
        defaults.WORKERS,
        defaults.TIMEOUT_S,
        defaults.OUTPUT_DIR,
    )
    assert (args.output_cap, args.sample_interval, args.keep_runs, args.warmup) == (
        defaults.OUTPUT_CAP_BYTES,
        defaults.SAMPLE_INTERVAL_S,
        defaults.KEEP_RUNS,
        defaults.WARMUP,
    )
    parsers = _parsers()
    for name in ("check", "compare", "report"):
        assert parsers[name].get_default("search_dir") == Path(defaults.OUTPUT_DIR)
    assert parsers["ab"].get_default("output_dir") == Path(defaults.AB_OUTPUT_DIR)
    assert parsers["ab"].get_default("timeout") == defaults.TIMEOUT_S
    # compare's and ab's statistics default per metric: time's table, or the instruction
    # counts' when both runs counted them
    from tracecore_perf.cli.args import settings_from

    for name, argv in (("compare", ["a", "b"]), ("ab", [])):
        settings = settings_from(parsers[name].parse_args(argv))
        for counted, table in ((False, defaults.COMPARE), (True, defaults.COMPARE_INSTRUCTIONS)):
            resolved = settings.resolved(counted)
            assert {key: getattr(resolved, key) for key in table} == table


def test_warmup_is_parsed_and_refused_on_resume(tmp_path):
    args, given = parse(["--warmup", "0", "--episodes", "3"])
    assert args.warmup == 0 and given == ["episodes", "warmup"]
    done = harness("--warmup", "-1", cwd=tmp_path)
    assert done.returncode == 2 and "--warmup" in done.stderr and "must be 0 or more" in done.stderr
    done = harness("--resume", str(tmp_path), "--warmup", "2", cwd=tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "drop --warmup" in line


def test_the_end_of_run_lines():
    assert failures_line(0, {}) is None
    line = failures_line(5, {"timeout: 1 s": 1, "crashed: exit 3": 3, "a": 1, "b": 0})
    assert line == "5 episodes failed: crashed: exit 3 (x3); a (x1); timeout: 1 s (x1); 1 more reason(s)"
    args, _ = parse(["--report", "--output-cap", "4096"])
    command = resume_command("out dir/run-20260101T000000Z", args)
    assert command == (f"{sys.executable} -m tracecore_perf --resume 'out dir/run-20260101T000000Z' --output-cap 4096 --report")


# --- a baseline is named the same way everywhere -----------------------------------------


@pytest.mark.parametrize("ref", [str(SLICE), SLICE_STAMP, str(SLICE / f"perf-summary-{SLICE_STAMP}.json")])
def test_check_takes_a_baseline_as_report_does(tmp_path, ref):
    search = ("--search-dir", str(SLICE))
    done = harness("check", str(SLICE), "--baseline", ref, *search, "--no-trends", "--format", "json", cwd=tmp_path)
    assert done.returncode in (0, 1), done.stderr
    assert json.loads(done.stdout)["stamp"] == SLICE_STAMP


def test_compare_takes_folders_holding_one_published_run(tmp_path):
    done = harness("compare", str(SLICE), str(SLICE), "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    comparison = json.loads(done.stdout)
    assert comparison["baseline"] == comparison["current"] == SLICE_STAMP


def test_a_folder_with_no_published_run_is_bad_input(tmp_path):
    (tmp_path / "empty").mkdir()
    for argv in (
        ["check", "empty"],
        ["compare", "empty", "empty"],
        ["report", "empty"],
        ["check", str(SLICE), "--baseline", "empty"],
    ):
        done = harness(*argv, cwd=tmp_path)
        assert done.returncode == 2, argv
        (line,) = done.stderr.strip().splitlines()
        assert "empty holds no published run" in line


# --- layering ----------------------------------------------------------------------------


def _imports(path: Path, module: str) -> set[str]:
    """Every tracecore_perf module ``path`` imports, at module level or inside functions."""
    found = set()
    known = set(_modules()) | {"tracecore_perf"}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, *([base] if base else [])])
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        found |= {name for name in names if name.split(".")[0] == "tracecore_perf" and name != module}
    return found


def _graph() -> dict[str, set[str]]:
    graph = {}
    for module in _modules():
        relative = Path(*module.split(".")[1:])
        path = PACKAGE / relative / "__init__.py" if (PACKAGE / relative).is_dir() else PACKAGE / relative.with_suffix(".py")
        graph[module] = _imports(path, module)
    return graph


def test_no_import_cycle_among_the_packages_modules():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycle = stack[stack.index(target) :] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module)


def test_no_stage_imports_the_cli():
    offenders = {
        module: sorted(t for t in targets if t == "tracecore_perf.cli" or t.startswith("tracecore_perf.cli."))
        for module, targets in _graph().items()
        if not module.startswith("tracecore_perf.cli") and module != "tracecore_perf.__main__"
    }
    assert {m: t for m, t in offenders.items() if t} == {}
    # and the stages are there to be checked
    assert any(m.startswith("tracecore_perf.run.") for m in offenders)
    assert any(m.startswith("tracecore_perf.verdicts.") for m in offenders)
    assert any(m.startswith("tracecore_perf.report.") for m in offenders)


# Scripts, not modules: importing one does its work (``python -m tracecore_perf`` runs a run;
# the episode interpreter's entry point serves a zygote), so no test imports them.
ENTRY_POINTS = {"tracecore_perf.__main__", "tracecore_perf.run.episode_process"}


@pytest.mark.slow  # a fresh interpreter
def test_every_module_imports_first_in_a_fresh_interpreter(tmp_path):
    """Each module imported as the package's first, in one fresh interpreter (the package's
    modules dropped between imports): an import cycle would fail half-initialised. The
    script counts what it imported, so a module that ends the interpreter (as __main__ did,
    running a real run in the checkout) cannot pass for all of them."""
    modules = [m for m in _modules() if m not in ENTRY_POINTS]
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    for loaded in [m for m in sys.modules if m == 'tracecore_perf' or m.startswith('tracecore_perf.')]:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
        "    print(name)\n"
    )
    done = run_watched([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == modules and len(modules) > 50
    assert list(tmp_path.iterdir()) == []  # importing wrote nothing


# --- the checkout ------------------------------------------------------------------------


@pytest.mark.slow  # asks git
def test_gitignore_covers_every_default_output_folder():
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    paths = [
        f"{defaults.OUTPUT_DIR}/run-20260101T000000Z/series.jsonl",
        f"{defaults.OUTPUT_DIR}/perf-summary-20260101T000000Z.json",
        f"{defaults.AB_OUTPUT_DIR}/a/run-20260101T000000Z/series.jsonl",
        f"{defaults.AB_OUTPUT_DIR}/b/perf-summary-20260101T000000Z.json",
        f"{defaults.OUTPUT_DIR}/matrix-20260101T000000Z/cell/perf-summary-20260101T000000Z.json",
    ]
    done = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=REPO, capture_output=True, text=True)
    assert done.stdout.split() == paths, done.stderr


def test_the_docs_report_examples_name_stamps_that_exist():
    readme = (REPO / "docs" / "report.md").read_text(encoding="utf-8")
    stamps = re.findall(r"tracecore_perf report (\d{8}T\d{6}Z)", readme)
    assert stamps
    committed = {
        p.name.split("-")[-1].removesuffix(".json")
        for p in (REPO / "deliverables" / "perf").glob("baseline*/perf-manifest-*.json")
    }
    assert set(stamps) <= committed


# --- the process's exit (python -m tracecore_perf leaves with os._exit) --------------------


@pytest.mark.slow  # the command as a process, with its output descriptors closed or broken
def test_bad_input_with_stdout_closed_is_still_one_line_and_exit_2(tmp_path):
    done = run_watched(
        [sys.executable, "-m", "tracecore_perf", "--episodes", "0"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: __import__("os").close(1),
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()  # no traceback from the exit's flush
    assert line.startswith("tracecore-perf: error:") and "--episodes" in line


@pytest.mark.slow
def test_a_reader_that_went_away_ends_the_command_with_141_and_no_traceback(tmp_path):
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will ever read: every write to the pipe fails with EPIPE
    try:
        done = run_watched(
            [sys.executable, "-m", "tracecore_perf", "check", str(SLICE), "--format", "json"],
            cwd=tmp_path,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 141
    assert done.stderr == ""


# --- exit codes ----------------------------------------------------------------------------


def test_the_readme_holds_the_exit_code_table_as_the_code_has_it():
    from tracecore_perf.errors import ExitCode

    assert ExitCode.table() in (REPO / "README.md").read_text(), "README's exit-code table is stale: paste ExitCode.table()"


def test_a_bug_of_ours_is_its_own_exit_code_with_a_crash_file(monkeypatch, capsys, tmp_path):
    from tracecore_perf.errors import ExitCode

    def broken(argv):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli.subcommand("check"), "main", broken)
    code = cli.main(["check", "x"])
    err = capsys.readouterr().err
    assert code == ExitCode.INTERNAL != ExitCode.STOPPED  # not "stopped, resumable"
    crash = Path(err.split("traceback in ")[1].split(";")[0])
    assert "internal error: ZeroDivisionError: a bug" in err and "ZeroDivisionError" in crash.read_text()
    crash.unlink()
