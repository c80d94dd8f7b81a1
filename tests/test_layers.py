"""The package's layers: every import of every module, lazy ones inside functions included,
goes down the table below, never up or sideways; no module imports another package's private
names; and the files the episode interpreter loads (``run/episode_process.py`` and the
``run/episode/`` package) import nothing of the package, only the standard library at their
top, and load in an interpreter that has nothing but the standard library.

A package here is a folder under ``tracecore_perf/`` or a module at its top. Adding one means
placing it in ``LAYERS`` (``test_every_package_has_a_layer``).
"""

from __future__ import annotations

import ast
import graphlib
import sys
from pathlib import Path

import pytest

from conftest import run_watched

PACKAGE = Path(__file__).resolve().parents[1] / "tracecore_perf"

# Top to bottom. A package may import packages of lower layers only.
LAYERS: list[set[str]] = [
    {"__main__"},  # python -m tracecore_perf
    {"cli"},  # the only layer that parses arguments
    {"continuous"},  # two revisions of a TraceCore checkout built alike, then ab
    {"export", "ab", "matrix"},  # output formats of every verdict; experiments that run and judge
    {"history"},  # performance across runs: its store, change points, page
    {"report"},  # charts and the HTML report of one run
    {"explain"},  # which functions account for a count that moved: the profiles two runs kept
    {"verdicts"},  # check, compare, trends: judging published runs
    {"run"},  # making a run
    {"published"},  # reading a published run, and the manifest of any run directory (one decode of a manifest)
    {"stats"},  # summary statistics
    {"models", "files", "units", "errors", "compat", "escape"},  # contracts; safe writing; sizes; errors and exit
    # codes; Python versions; agent text escaped for each output sink
    {"settings"},  # the run settings (the manifest nests them)
    {"defaults", "tracecore_perf"},  # the defaults table; the package's version
]
LAYER = {name: depth for depth, names in enumerate(LAYERS) for name in names}
# Loaded from source by the episode interpreter (any Python with TraceCore): standard library only.
EPISODE_SCRIPT = PACKAGE / "run" / "episode_process.py"
EPISODE_PACKAGE = PACKAGE / "run" / "episode"
EPISODE_FILES = ("run/episode_process.py", *sorted(f"run/episode/{p.name}" for p in EPISODE_PACKAGE.glob("*.py")))


def package_of(module: str) -> str:
    """``tracecore_perf.run.harness`` -> ``run``; ``tracecore_perf.models`` -> ``models``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "tracecore_perf"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, list[str], int]]:
    """Every import of the package in ``path``: (module imported, names taken from it, line)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names if alias.name.startswith("tracecore_perf")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("tracecore_perf"):
            names = [alias.name for alias in node.names]
            if node.module == "tracecore_perf":  # `from tracecore_perf import defaults`: a module each
                found += [
                    (f"tracecore_perf.{name}" if name != "__version__" else "tracecore_perf", [], node.lineno) for name in names
                ]
            else:
                found.append((node.module, names, node.lineno))
    return found


def edges() -> list[tuple[str, str, str, list[str]]]:
    """(importing package, imported package, where, names) for every import across packages."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = package_of(module_name(path))
        for target, names, line in imports(path):
            if package_of(target) != source:
                out.append((source, package_of(target), f"{path.relative_to(PACKAGE.parent)}:{line}", names))
    return out


def violations(found: list[tuple[str, str, str, list[str]]]) -> list[str]:
    """Each import that does not go down the table."""
    return [
        f"{where}: {source} (layer {LAYER.get(source)}) imports {target} (layer {LAYER.get(target)})"
        for source, target, where, _ in found
        if source in LAYER and target in LAYER and LAYER[target] <= LAYER[source]
    ]


def test_every_package_has_a_layer():
    packages = {package_of(module_name(path)) for path in PACKAGE.rglob("*.py")}
    assert packages - LAYER.keys() == set(), "place each new package in LAYERS"
    assert LAYER.keys() - packages == set(), "LAYERS names a package that does not exist"


def test_every_import_goes_down_the_layers():
    found = edges()
    assert len(found) > 50, "the walk found too few imports to have looked at the package"
    assert violations(found) == []


def test_the_check_sees_an_import_up_the_layers():
    upward = [("verdicts", "run", "x.py:1", []), ("run", "verdicts", "y.py:2", []), ("export", "ab", "z.py:3", [])]
    assert [line.split(":")[0] for line in violations(upward)] == ["y.py", "z.py"]


def test_packages_import_each_other_without_cycles():
    graph: dict[str, set[str]] = {}
    for source, target, _, _ in edges():
        graph.setdefault(source, set()).add(target)
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"packages import each other in a cycle: {exc.args[1]}")
    assert "models" in order and "cli" in order


def test_no_package_imports_another_packages_private_names():
    private = [
        f"{where}: {name} from {target}"
        for _, target, where, names in edges()
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert private == []


@pytest.mark.parametrize("name", EPISODE_FILES)
def test_the_episode_interpreters_files_import_nothing_of_the_package(name: str):
    assert imports(PACKAGE / name) == []


def test_the_episode_side_is_every_file_of_its_package():
    assert len(EPISODE_FILES) > 10 and "run/episode/zygote.py" in EPISODE_FILES and "run/episode/sandbox.py" in EPISODE_FILES


@pytest.mark.parametrize("name", EPISODE_FILES)
def test_the_episode_side_imports_only_the_standard_library_at_its_top(name: str):
    """What a module imports as it loads: the standard library, or its own package (relative);
    anything else (msgspec, jsonschema-rs, TraceCore) only inside a function, where it is optional
    or needed."""
    tree = ast.parse((PACKAGE / name).read_text())
    STDLIB = sys.stdlib_module_names | {"__future__"}  # noqa: N806
    outside = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            outside += [alias.name for alias in node.names if alias.name.split(".")[0] not in STDLIB]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] not in STDLIB:
            outside.append(node.module)
    assert outside == []


@pytest.mark.slow  # starts an interpreter
def test_the_episode_side_loads_in_an_interpreter_with_only_the_standard_library():
    """As under ``--python`` or ``continuous``: an interpreter without tracecore_perf or any of its
    dependencies (here: no site directory at all) loads every module of the episode side, from
    source, under the episode side's own name."""
    names = sorted(p.stem for p in EPISODE_PACKAGE.glob("*.py") if p.stem != "__init__")
    code = (
        "import ast, importlib, os, sys\n"
        f"path = {str(EPISODE_SCRIPT)!r}\n"
        "tree = ast.parse(open(path).read())\n"  # the loader alone: the rest of the script runs a zygote
        "tree.body = [node for node in tree.body if getattr(node, 'name', '') == 'load_episode_side']\n"
        "script = {'__file__': path, 'os': os, 'sys': sys}\n"
        "exec(compile(tree, path, 'exec'), script)\n"
        "package = sys.modules[script['load_episode_side']().__name__.rpartition('.')[0]]\n"
        f"modules = [importlib.import_module(package.__name__ + '.' + name) for name in {names!r}]\n"
        "assert all(m.__spec__.loader.__class__.__name__ == 'SourceOnly' for m in modules)\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('tracecore_perf', 'msgspec', 'agent_bench')]\n"
        "print(package.__name__, len(modules))\n"
    )
    done = run_watched([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, cwd="/")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["tracecore_perf_episode", str(len(names))]
