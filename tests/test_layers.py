"""The package's layers: every import of every module, lazy ones inside functions included,
goes down the table below, never up or sideways; no module imports another package's private
names; and the files the episode interpreter loads import nothing of the package.

A package here is a folder under ``tracecore_perf/`` or a module at its top. Adding one means
placing it in ``LAYERS`` (``test_every_package_has_a_layer``).
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tracecore_perf"

# Top to bottom. A package may import packages of lower layers only.
LAYERS: list[set[str]] = [
    {"__main__"},  # python -m tracecore_perf
    {"cli"},  # the only layer that parses arguments
    {"continuous"},  # two revisions of a TraceCore checkout built alike, then ab
    {"export", "ab", "matrix"},  # output formats of every verdict; experiments that run and judge
    {"history"},  # performance across runs: its store, change points, page
    {"report"},  # charts and the HTML report of one run
    {"verdicts"},  # check, compare, trends: judging published runs
    {"run", "published"},  # making a run; reading a published one
    {"settings", "stats"},  # the run settings; summary statistics
    {"models", "files", "units", "errors", "compat", "escape"},  # contracts; safe writing; sizes; errors and exit
    # codes; Python versions; agent text escaped for each output sink
    {"defaults", "tracecore_perf"},  # the defaults table; the package's version
]
LAYER = {name: depth for depth, names in enumerate(LAYERS) for name in names}
# Loaded by path by the episode interpreter (any Python with TraceCore): standard library only.
EPISODE_FILES = ("run/episode_process.py", "run/episode_worker.py", "run/episode_sandbox.py")


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
