"""The episode environment a run records, and what `compare` does with it: every difference
named, and no instruction verdict across interpreters installed differently unless allowed.

The runs are the committed instruction baseline (deliverables/perf/baseline-slice-instructions),
copied with their manifests' environment written as two sides of the field report had them:
TraceCore from an index against an editable checkout with the tool's dependencies beside it."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from tracecore_perf.errors import UsageError
from tracecore_perf.published import locate
from tracecore_perf.verdicts.compare import Settings, compare_runs, environment_differences
from tracecore_perf.verdicts.models import WarningCode

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / "deliverables" / "perf" / "baseline-slice-instructions"

PLAIN = {
    "distributions": {"tracecore": "1.1.3", "fastapi": "0.165.0", "jsonschema": "4.26.0"},
    "editable": [],
    "tracecore_source": "index",
    "implementation": "cpython",
}
# the head side as the old workflow installed it: editable, the tool and its dependencies beside it
POLLUTED = {
    "distributions": {
        "tracecore": "1.1.3",
        "fastapi": "0.165.0",
        "jsonschema": "4.26.0",
        "tracecore-perf": "0.1.0",
        "msgspec": "0.23.0",
    },
    "editable": ["tracecore"],
    "tracecore_source": "tree file:///home/runner/work/Tracecore/Tracecore",
    "implementation": "cpython",
}


def _side(tmp_path: Path, name: str, environment: dict | None):
    folder = tmp_path / name
    folder.mkdir()
    for path in BASELINE.glob("perf-*.json"):
        shutil.copy(path, folder / path.name)
    (manifest,) = folder.glob("perf-manifest-*.json")
    data = json.loads(manifest.read_text())
    data["interpreter"]["environment"] = environment  # None: a run from before the record
    manifest.write_text(json.dumps(data))
    return locate(str(folder), folder)


def test_every_difference_is_named():
    from tracecore_perf.models import EpisodeEnvironment

    said = environment_differences(EpisodeEnvironment(**PLAIN), EpisodeEnvironment(**POLLUTED))
    assert said == [
        "msgspec 0.23.0 only in the current run",
        "tracecore-perf 0.1.0 only in the current run",
        "tracecore editable in the current run only",
        "TraceCore installed from index vs tree",
    ]
    # TraceCore's own version is the change under test (a runtime difference), not the environment's
    newer = {**PLAIN, "distributions": {**PLAIN["distributions"], "tracecore": "1.2.0"}}
    assert environment_differences(EpisodeEnvironment(**PLAIN), EpisodeEnvironment(**newer)) == []
    moved = {**PLAIN, "distributions": {**PLAIN["distributions"], "jsonschema": "4.18.0"}}
    assert environment_differences(EpisodeEnvironment(**PLAIN), EpisodeEnvironment(**moved)) == ["jsonschema 4.26.0 vs 4.18.0"]
    assert environment_differences(None, EpisodeEnvironment(**PLAIN)) == []  # a run from before the record
    # the installers every venv carries at the version it was made with: no episode loads them
    tooled = {**PLAIN, "distributions": {**PLAIN["distributions"], "pip": "99.0", "setuptools": "1.0"}}
    assert environment_differences(EpisodeEnvironment(**PLAIN), EpisodeEnvironment(**tooled)) == []


def test_an_instruction_verdict_across_environments_is_refused(tmp_path):
    base, cur = _side(tmp_path, "base", PLAIN), _side(tmp_path, "cur", POLLUTED)
    with pytest.raises(UsageError) as refused:
        compare_runs(base, cur, Settings(metric="instructions"))
    text = str(refused.value)
    assert "installed differently" in text and "tracecore editable in the current run only" in text
    assert "--allow-env-difference" in text


def test_allowed_it_is_compared_and_each_difference_is_a_loud_warning(tmp_path):
    base, cur = _side(tmp_path, "base", PLAIN), _side(tmp_path, "cur", POLLUTED)
    result = compare_runs(base, cur, Settings(metric="instructions"), allow_env_difference=True)
    (notice,) = [n for n in result.notices if n.code == WarningCode.ENVIRONMENT_MISMATCH]
    assert "tracecore-perf 0.1.0 only in the current run" in notice.message
    assert result.verdict == "no change"  # the same counts on both sides: only the record differs


def test_time_is_compared_with_the_difference_named(tmp_path):
    base, cur = _side(tmp_path, "base", PLAIN), _side(tmp_path, "cur", POLLUTED)
    result = compare_runs(base, cur, Settings(metric="cpu_s"))
    assert any(n.code == WarningCode.ENVIRONMENT_MISMATCH for n in result.notices)


def test_runs_from_before_the_record_compare_as_before(tmp_path):
    base, cur = _side(tmp_path, "base", None), _side(tmp_path, "cur", POLLUTED)
    result = compare_runs(base, cur, Settings(metric="instructions"))
    assert not any(n.code == WarningCode.ENVIRONMENT_MISMATCH for n in result.notices)


def test_the_probe_records_this_interpreter():
    """The episode side's record of its own interpreter (the same function the probe runs),
    here on the test's own: tracecore-perf runs from this source tree (an editable install,
    or the tree on sys.path), so it is recorded as installed in place; TraceCore is not."""
    from tracecore_perf.run.episode import probe

    found = probe.environment()
    assert found["implementation"] == sys.implementation.name
    from importlib import metadata

    import tracecore_perf

    assert found["distributions"]["tracecore"] == metadata.version("tracecore")
    assert found["distributions"]["msgspec"] == metadata.version("msgspec")
    assert Path(tracecore_perf.__file__).resolve().is_relative_to(REPO)
    assert "tracecore-perf" in found["editable"] and "tracecore" not in found["editable"]
    assert found["tracecore_source"].split(" ")[0] in ("index", "archive")  # a wheel from PyPI, however pip recorded it
