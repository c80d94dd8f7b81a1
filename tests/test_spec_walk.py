"""``--strict-spec`` with the schema walk compiled: the same answer as TraceCore's own check.

The workers' spec check gives TraceCore's ``check_spec_compliance`` the answer of its
jsonschema walk ("no schema errors") when jsonschema-rs, compiled from TraceCore's own
artifact schema, finds the artifact valid; anything it rejects gets TraceCore's whole check.
So the one thing that must never happen is jsonschema-rs calling valid what jsonschema
rejects. These tests hold the worker's answer equal to TraceCore's over the real artifacts
of the default scenario's shipped agents and over every way this file breaks them, and show
on a published run that an artifact only the schema catches still fails its row.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_bench.runner import spec_check
from test_containment import AGENTS, HEALTHY, MARKER, Run, assert_ended_and_published, hostile, run_harness

from tracecore_perf.run.episode import spec
from tracecore_perf.run.episode.state import side
from tracecore_perf.run.scenario import DEFAULT_SCENARIO

from conftest import interpreter_with_own_copies

DEFAULT_ROWS = [{"agent": row.agent, "task_ref": row.task_ref, "seed": row.seed} for row in DEFAULT_SCENARIO]
FORGING = {"agent": str(AGENTS / "spec_forging_agent.py"), "task_ref": "filesystem_hidden_config@1", "seed": 1}
ROWS = [*DEFAULT_ROWS, FORGING] * 2
FORGED_SPEC_VERSION = "tracecore-spec-v1.0-forged"  # spec_forging_agent.py's


@pytest.fixture(scope="module")
def strict_run(tmp_path_factory) -> Run:
    return run_harness(tmp_path_factory.mktemp("strict"), ROWS, "--strict-spec", workers=2)


def tracecore_answer(artifact: dict) -> list[str]:
    """TraceCore's spec check as it ships, cut as the worker cuts it."""
    return [str(error)[:500] for error in list(spec_check.check_spec_compliance(artifact)["errors"])[:20]]


def answer(check, artifact: dict) -> list[str] | str:
    """The check's errors, or the exception it raises (TraceCore's own rules raise on some
    values; the worker then calls the artifact unreadable)."""
    try:
        return check(artifact)
    except Exception as exc:  # noqa: BLE001
        return type(exc).__name__


@pytest.mark.slow
def test_an_artifact_only_the_schema_rejects_fails_its_row_in_the_published_run(strict_run: Run):
    assert_ended_and_published(strict_run, exit_code=1)  # episodes failed; the run itself is sound
    series = strict_run.artifact("series")
    assert sorted(row["episode_index"] for row in series) == list(range(len(ROWS)))
    for row in series:
        if row["agent"] == FORGING["agent"]:
            assert row["success"] is False, row
            # TraceCore's own words: its schema walk, not its prefix rule, caught the version
            assert row["error"].startswith("strict-spec: schema: spec_version:") and FORGED_SPEC_VERSION in row["error"], row
        else:
            assert row["success"] is True, row


@pytest.mark.slow
def test_the_workers_answer_is_tracecores_on_every_real_artifact_and_every_way_to_break_it(strict_run: Run):
    spec.load_spec_walk()
    assert side.schema_is_valid is not None, "jsonschema-rs, a dependency, compiled nothing"
    artifacts = _one_per_agent(strict_run)
    assert len(artifacts) == len(DEFAULT_ROWS) + 1, sorted(artifacts)
    taken = {True: 0, False: 0}  # the compiled walk's answer: both ways must be exercised
    for agent, artifact in artifacts.items():
        for label, variant in [("as published", artifact), *_broken(artifact)]:
            # Where jsonschema-rs passes the artifact, the worker's answer lacks the walk's
            # errors, so equal answers mean that jsonschema passed it too.
            assert answer(spec.spec_errors, variant) == answer(tracecore_answer, variant), f"{agent}: {label}"
            taken[_compiled_valid(variant)] += 1
    assert taken[True] > 50 and taken[False] > 500, taken


@pytest.mark.slow
def test_the_jsonschema_walk_runs_only_for_what_the_compiled_walk_rejects(strict_run: Run, monkeypatch):
    spec.load_spec_walk()
    artifacts = _one_per_agent(strict_run)
    walks = []
    walk = spec_check._validate_jsonschema

    def counting(result, schema):
        walks.append(1)
        return walk(result, schema)

    monkeypatch.setattr(spec_check, "_validate_jsonschema", counting)
    forged = artifacts.pop(FORGING["agent"])
    for artifact in artifacts.values():
        assert spec.spec_errors(artifact) == []
    assert walks == [], "a valid artifact was walked by jsonschema: the compiled walk is not in use"
    errors = spec.spec_errors(forged)
    assert walks == [1] and errors and errors[0].startswith("schema: spec_version:")
    assert spec_check._validate_jsonschema is counting  # restored after each call


def test_without_jsonschema_rs_every_artifact_gets_tracecores_check_as_it_ships(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "jsonschema_rs", None)  # import fails
    monkeypatch.setattr(side, "schema_is_valid", None)
    monkeypatch.setattr(side, "verdict_warm", True)  # as loaded, here without jsonschema-rs
    monkeypatch.setattr(side, "schema", None)
    spec.load_spec_walk()
    assert side.schema_is_valid is None
    bare = {"run_id": "r1", "spec_version": FORGED_SPEC_VERSION}
    assert spec.spec_errors(bare) == tracecore_answer(bare) and tracecore_answer(bare)


# --- the verdict's own code out of an episode's reach ----------------------------------------


@pytest.fixture(scope="module", params=["spawn", "forkserver"])
def tampered_run(request, tmp_path_factory) -> tuple[Run, Path, bool]:
    """verdict_tampering_agent makes the episode interpreter's jsonschema-rs pass everything
    and forges its own artifact; forgers follow it on the same worker, then a zygote killer
    (a new zygote would load the changed file), then more. The episode interpreter is a
    scratch virtual environment with a copy of jsonschema-rs of its own (everything else
    from this one's site directory, through a .pth file), so the copy it changes is thrown
    away with it, whatever becomes of the test."""
    import jsonschema_rs

    work = tmp_path_factory.mktemp(f"tampered-{request.param}")
    python = interpreter_with_own_copies(work, jsonschema_rs)
    (installed,) = python.parents[1].glob("lib/python*/site-packages/jsonschema_rs/__init__.py")
    rows = [hostile("verdict_tampering_agent"), FORGING, hostile("zygote_killing_agent"), FORGING, HEALTHY]
    run = run_harness(
        work, rows, "--strict-spec", "--isolation", request.param, "--python", str(python),
        workers=1, env={"HOSTILE_TARGETS": str(installed)},
    )  # fmt: skip
    return run, installed, MARKER in installed.read_text()


@pytest.mark.slow
def test_changed_verdict_code_passes_no_artifact_and_taints_the_run(tampered_run: tuple[Run, Path, bool]):
    run, installed, changed = tampered_run
    assert changed, "the fixture changed nothing: the test proves nothing"
    assert_ended_and_published(run, exit_code=4)
    summary = run.artifact("summary")
    assert summary["status"] == "tainted"
    assert any(str(installed) in problem for problem in summary["integrity"]["problems"]), summary["integrity"]
    rows = {row["episode_index"]: row for row in run.artifact("series")}
    # the tamperer's own artifact and the forger's after it, on the same worker, both judged
    # by the jsonschema-rs loaded before any episode; no zygote started from the changed file
    for index in (0, 1):
        assert rows[index]["success"] is False and "spec_version" in (rows[index]["error"] or ""), rows[index]
    artifacts = {a["run_id"]: a for a in map(json.loads, _artifact_texts(run))}
    for row in rows.values():
        if row["success"]:
            assert tracecore_answer(artifacts[row["run_id"]]) == [], row


def test_a_loaded_package_is_sealed_by_stamp_whole_and_a_single_module_by_itself(tmp_path: Path):
    from tracecore_perf.run.seal import CodeSeal

    package, module = tmp_path / "pkg", tmp_path / "single.py"
    package.mkdir()
    (package / "__init__.py").write_text("x = 1\n")
    module.write_text("y = 2\n")
    seal = CodeSeal([], [], loaded_packages=[str(package), str(module)])
    assert seal.changed() == []
    with open(module, "a") as fh:
        fh.write("PLANTED = 1\n")
    (package / "planted.py").write_text("z = 3\n")
    assert seal.changed() == [str(module), str(package / "planted.py")]


# --- the artifacts and the ways to break them ---------------------------------------------


def _artifact_texts(run: Run) -> list[str]:
    assert run.run_dir is not None, run.tail()
    return [path.read_text() for path in sorted((run.run_dir / ".agent_bench" / "runs").glob("*.json"))]


def _one_per_agent(run: Run) -> dict[str, dict]:
    """One artifact per agent from the run's ``.agent_bench/runs`` (as the worker placed it)."""
    assert run.run_dir is not None, run.tail()
    found: dict[str, dict] = {}
    for path in sorted((run.run_dir / ".agent_bench" / "runs").glob("*.json")):
        artifact = json.loads(path.read_text())
        found.setdefault(artifact["agent"], artifact)
    return found


def _compiled_valid(artifact: dict) -> bool:
    try:
        return bool(side.schema_is_valid(artifact))
    except Exception:  # noqa: BLE001 - what the worker treats as "not proven valid"
        return False


# Each JSON type, a negative number, an integer beyond 64 bits and a NaN (JSON's floats allow
# them), a true that Python counts as an int; "x" is no date-time (TraceCore asserts no format).
BAD_VALUES = [None, "x", -1, 1.5, 2**70, True, float("nan"), [], {}]


def _broken(artifact: dict) -> Iterator[tuple[str, dict]]:
    """Each single change to the artifact: every field of every object (the first element of
    each list stands for the rest) removed, replaced by each bad value, a string given a
    trailing newline or Unicode digits; an unknown field added to each object; each list
    emptied or given a stray element."""
    for path, value in _nodes(artifact):
        if isinstance(value, dict):
            for key in value:
                yield f"{path}.{key} removed", _changed(artifact, [*path, key], _REMOVE)
                for bad in BAD_VALUES:
                    yield f"{path}.{key} = {bad!r}", _changed(artifact, [*path, key], bad)
            yield f"{path} + unknown field", _changed(artifact, [*path, "unexpected_field"], 1)
        elif isinstance(value, list):
            yield f"{path} emptied", _changed(artifact, path, [])
            yield f"{path} + stray element", _changed(artifact, path, [*value, "stray"])
        elif isinstance(value, str) and path:
            yield f"{path} + newline", _changed(artifact, path, value + "\n")
            yield f"{path} digits", _changed(artifact, path, value.replace("1", "\u0661").replace("0", "\u0660"))


def _nodes(value: object, path: tuple = ()) -> Iterator[tuple[tuple, object]]:
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _nodes(item, (*path, key))
    elif isinstance(value, list) and value:
        yield from _nodes(value[0], (*path, 0))


_REMOVE = object()


def _changed(artifact: dict, path: list | tuple, new: object) -> dict:
    changed = copy.deepcopy(artifact)
    if not path:
        return new  # type: ignore[return-value]
    *parents, last = path
    holder = changed
    for key in parents:
        holder = holder[key]
    if new is _REMOVE:
        del holder[last]
    else:
        holder[last] = new
    return changed
