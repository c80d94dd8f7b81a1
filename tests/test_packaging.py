"""tracecore-perf as it would be uploaded: the sdist and the wheel built from it carry every
file of the package (the report's templates, the episode interpreter's files it loads by path),
pass ``twine check``, and the wheel, installed into a fresh virtual environment with nothing
else of ours, runs: the commands' help, and a real run with its HTML report."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import tracecore_perf

from conftest import REPO, harness_env, run_watched

pytestmark = pytest.mark.slow  # builds, and starts processes


def _package_files() -> set[str]:
    root = REPO / "tracecore_perf"
    return {p.relative_to(REPO).as_posix() for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_the_wheel_and_the_sdist_carry_every_file_of_the_package(tool_dist):
    wheel, sdist = tool_dist["wheel"], tool_dist["sdist"]
    version = tracecore_perf.__version__
    assert wheel.name == f"tracecore_perf-{version}-py3-none-any.whl" and sdist.name == f"tracecore_perf-{version}.tar.gz"
    files = _package_files()
    # the files read at run time by path or through the package, not imported: they must be there too
    assert {
        "tracecore_perf/report/templates/report.html.j2",
        "tracecore_perf/report/templates/history.html.j2",
        "tracecore_perf/run/episode_process.py",
        "tracecore_perf/run/episode/__init__.py",
        "tracecore_perf/run/episode/zygote.py",
        "tracecore_perf/run/episode/worker.py",
        "tracecore_perf/run/episode/sandbox.py",
    } <= files
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"tracecore_perf-{version}.dist-info/METADATA").decode()
        entry_points = archive.read(f"tracecore_perf-{version}.dist-info/entry_points.txt").decode()
    assert files <= names, sorted(files - names)
    assert not {n for n in names if n.startswith("tests/") or n.endswith(".pyc")}
    assert f"Version: {version}" in metadata and "Requires-Dist: tracecore" in metadata
    assert "tracecore-perf = tracecore_perf.cli:main" in entry_points
    with tarfile.open(sdist) as archive:
        inside = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert files <= inside and {"pyproject.toml", "README.md"} <= inside, sorted(files - inside)


def test_both_pass_twine_check(tool_dist):
    done = run_watched(
        [sys.executable, "-m", "twine", "check", "--strict", str(tool_dist["wheel"]), str(tool_dist["sdist"])],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2


@pytest.mark.long
def test_the_wheel_installed_alone_runs(tool_dist, tmp_path: Path, no_leftovers):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = run_watched(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
         "--constraint", str(REPO / ".ci" / "constraints.txt"), str(tool_dist["wheel"])],
        capture_output=True, text=True,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-2000:]

    def tool(*args: str) -> subprocess.CompletedProcess:
        # from a folder of its own, so nothing of the checkout is importable
        return run_watched([python, "-m", "tracecore_perf", *args], capture_output=True, text=True,
                              cwd=tmp_path, env=harness_env(tmp_path))  # fmt: skip

    helped = tool("--help")
    assert helped.returncode == 0 and "continuous" in helped.stdout
    continuous = tool("continuous", "--help")
    assert continuous.returncode == 0 and "BASE" in continuous.stdout and "--repo PATH" in continuous.stdout
    version = run_watched([venv / "bin" / "tracecore-perf", "--version"], capture_output=True, text=True)
    assert version.stdout.strip() == f"tracecore-perf {tracecore_perf.__version__}"
    where = run_watched([python, "-c", "import tracecore_perf; print(tracecore_perf.__file__)"], capture_output=True,
                           text=True, cwd=tmp_path)  # fmt: skip
    assert where.stdout.startswith(str(venv))

    # a real run from the installed files: the episode interpreter's files loaded by path, the report's templates
    ran = tool("--episodes", "2", "--workers", "1", "--output-dir", "out", "--report", "--no-progress")
    assert ran.returncode == 0, ran.stderr[-2000:]
    (report,) = (tmp_path / "out").glob("perf-report-*.html")
    assert "<html" in report.read_text()[:500].lower()
