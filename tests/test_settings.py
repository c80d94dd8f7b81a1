"""One set of run settings (tracecore_perf/settings.py): run's flags, ab's flags, a matrix
file's keys and the manifest's record (``Manifest.settings``) are all made from it, so a setting
exists everywhere or nowhere; and the older manifests, each setting flat at the top level, read
into the settings they always did (the committed runs under deliverables/perf/ as they are). In
process, no episode."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import msgspec
import pytest

from tracecore_perf import cli
from tracecore_perf.errors import UsageError
from tracecore_perf.matrix import plan
from tracecore_perf.matrix.cells import run_argv
from tracecore_perf.matrix.models import CellSettings
from tracecore_perf.models import FORMAT_VERSION, Manifest
from tracecore_perf.published import decode_manifest, recorded
from tracecore_perf.run.rundir import RunDir
from tracecore_perf.settings import NAMES, RunSettings, described
from tracecore_perf.verdicts.compare import setup_differences

from conftest import REPO

AB_OWN = {"python"}  # ab takes an interpreter per side: --python twice, with a help of its own


def _flags(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {action.dest: action for action in parser._actions}  # noqa: SLF001 - argparse's list of them


def test_every_setting_is_a_flag_of_run_and_ab_with_the_same_help():
    run, ab = _flags(cli.subcommand("run").run_parser()), _flags(cli.subcommand("ab").parser())
    for name, _, _, text in described():
        assert text, f"{name} has no help line"
        assert run[name].help == text
        if name not in AB_OWN:
            assert ab[name].help == text, name
    assert ab["warmup"].default == RunSettings().warmup  # ab --warmup exists because the struct has it


def test_every_setting_is_a_matrix_key_with_the_runs_bounds(tmp_path: Path):
    assert set(NAMES) <= set(CellSettings.__struct_fields__)
    path = tmp_path / "cells.toml"
    path.write_text('[[cells]]\nname = "a"\nwarmup = -1\n')
    with pytest.raises(Exception, match="warmup: Expected `int` >= 0"):  # the struct's own bound
        plan.load(path)
    path.write_text('episodes = 3\nwarmup = 0\ninstructions = true\nstrict_spec = true\ntimeout = 9\n[[cells]]\nname = "a"\n')
    (cell,) = plan.load(path).cells
    assert (cell.settings.episodes, cell.settings.warmup, cell.settings.timeout) == (3, 0, 9.0)
    # on a Ray node the cell is a command line: run's own parser reads it back as the same settings
    argv = run_argv(cell, tmp_path / "out", tmp_path / "rows.json")
    args, _ = cli.subcommand("run").parse(argv[1:])
    assert cli.args.run_settings_from(args) == cell.settings


# --- the manifest's record: Manifest.settings, and the older flat formats ----------------------

PERF = REPO / "deliverables" / "perf"
COMMITTED = ("baseline", "baseline-slice", "baseline-slice-instructions")  # published flat (format 1)
MOVED = ("isolation", "keep_runs", "sample_interval_s", "warmup", "memory_limit", "sandbox", "instructions")
GUIDE_COPY = ("episodes", "workers", "timeout", "strict_spec", "compress")  # TraceCore's performance guide's names


def committed(folder: str, *, drop_version: bool = False) -> bytes:
    """A committed run's manifest as published (format 1); ``drop_version``: as a harness from
    before format_version published it (format 0)."""
    data = json.loads(next((PERF / folder).glob("perf-manifest-*.json")).read_bytes())
    if drop_version:
        del data["format_version"]
    return json.dumps(data).encode()


def flat_settings(data: dict) -> RunSettings:
    """What the harness read from a flat manifest before the settings were nested (what
    ``--resume`` went on with): each setting at the top level, ``python`` as the interpreter's
    executable, ``sample_interval`` as ``sample_interval_s``, a setting the run predates as it ran."""
    return RunSettings(
        **{name: data[name] for name in ("episodes", "workers", "timeout", "strict_spec", "compress", "isolation", "keep_runs")},
        python=data["interpreter"]["executable"],
        sample_interval=data["sample_interval_s"],
        warmup=data.get("warmup", 0),
        memory_limit=data.get("memory_limit"),
        sandbox=data.get("sandbox", False),
        instructions=data.get("instructions", False),
        counted_per_row=0,  # an instruction run counted every episode then
    )


def as_format_2(manifest: Manifest) -> bytes:
    """``manifest`` published by this harness: the format that nests the settings."""
    return msgspec.json.encode(msgspec.structs.replace(manifest, format_version=FORMAT_VERSION))


def test_the_manifest_nests_every_setting_and_round_trips():
    assert FORMAT_VERSION == 3
    old = decode_manifest(committed("baseline-slice-instructions"))
    written = as_format_2(old)
    data = json.loads(written)
    assert data["format_version"] == 3
    assert list(data["settings"]) == list(NAMES)  # every setting, under its own name
    assert not set(MOVED) & set(data), "a setting left flat at the top level"
    assert {name: data[name] for name in GUIDE_COPY} == {name: data["settings"][name] for name in GUIDE_COPY}
    assert data["interpreter"]["executable"] == data["settings"]["python"]  # the interpreter stays, versions and all
    again = decode_manifest(written)
    assert again == msgspec.structs.replace(old, format_version=FORMAT_VERSION)
    assert again.settings == old.settings and again.format_version == 3
    assert recorded(again) == again.settings


def test_a_format_2_manifest_counted_every_episode():
    """Format 3 added settings.counted_per_row: a format 2 run (settings nested, the key absent)
    counted every episode under --instructions, and reads as counted_per_row 0 (every one),
    whatever today's default; a format 3 run reads as it recorded."""
    data = json.loads(as_format_2(decode_manifest(committed("baseline-slice-instructions"))))
    assert data["settings"]["counted_per_row"] == 0
    del data["settings"]["counted_per_row"]
    as_3 = decode_manifest(json.dumps({**data, "format_version": 3}).encode())
    assert as_3.settings.counted_per_row == RunSettings().counted_per_row
    data["format_version"] = 2
    manifest = decode_manifest(json.dumps(data).encode())
    assert manifest.settings.counted_per_row == 0 and recorded(manifest).counted_per_row == 0
    data["format_version"], data["settings"]["counted_per_row"] = 3, 3
    assert decode_manifest(json.dumps(data).encode()).settings.counted_per_row == 3


def test_the_guide_copy_is_written_from_the_settings_alone():
    manifest = decode_manifest(committed("baseline-slice"))
    more = msgspec.structs.replace(manifest, settings=msgspec.structs.replace(manifest.settings, episodes=48, workers=2))
    assert (more.episodes, more.workers) == (48, 2)
    data = json.loads(as_format_2(manifest))
    data["episodes"] = 1  # an edit of the copy: the settings are the record
    assert decode_manifest(json.dumps(data).encode()).episodes == 24


@pytest.mark.parametrize("folder", COMMITTED)
@pytest.mark.parametrize("version", [0, 1])
def test_an_older_manifest_reads_into_the_settings_it_always_did(folder: str, version: int):
    raw = committed(folder, drop_version=version == 0)
    manifest = decode_manifest(raw)
    assert manifest.format_version == version
    assert manifest.settings == flat_settings(json.loads(raw))
    assert recorded(manifest) == manifest.settings  # within the flags' bounds: --resume goes on with them
    assert (manifest.episodes, manifest.workers) == (manifest.settings.episodes, manifest.settings.workers)


def test_the_committed_runs_record_what_they_ran_with():
    counted = decode_manifest(committed("baseline-slice-instructions")).settings
    assert (counted.episodes, counted.workers, counted.strict_spec, counted.instructions) == (24, 4, True, True)
    assert (counted.isolation, counted.sample_interval, counted.memory_limit) == ("forkserver", 0.5, 4 * 1024**3)
    slice_ = decode_manifest(committed("baseline-slice")).settings
    assert slice_.memory_limit is None and not slice_.sandbox and not slice_.instructions  # from before those settings
    assert slice_.python == "/work/venv/bin/python"


def test_an_older_manifest_missing_a_setting_it_always_had_is_refused():
    data = json.loads(committed("baseline-slice"))
    del data["isolation"]
    with pytest.raises(msgspec.ValidationError, match="missing required field `isolation`"):
        decode_manifest(json.dumps(data).encode())


def test_a_manifest_of_a_newer_format_is_refused():
    data = json.loads(as_format_2(decode_manifest(committed("baseline-slice"))))
    data["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(msgspec.ValidationError, match=f"format version {FORMAT_VERSION + 1}, newer than"):
        decode_manifest(json.dumps(data).encode())


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [("workers", 0, "settings.workers 0: Expected `int` >= 1"), ("sample_interval", -1, "settings.sample_interval -1.0")],
)
def test_an_edited_setting_out_of_bounds_reads_but_is_not_gone_on_with(name: str, value: object, says: str):
    data = json.loads(as_format_2(decode_manifest(committed("baseline-slice"))))
    data["settings"][name] = value
    manifest = decode_manifest(json.dumps(data).encode())  # a record reads as it was: check, compare, report
    with pytest.raises(UsageError, match=f"^manifest.json: {says}"):
        recorded(manifest, "manifest.json")


def test_compare_reads_the_setup_from_either_format():
    old = decode_manifest(committed("baseline-slice"))
    new = decode_manifest(as_format_2(old))
    assert setup_differences(old, new) == setup_differences(new, old) == []
    spawned = msgspec.structs.replace(new, settings=msgspec.structs.replace(new.settings, isolation="spawn", workers=8))
    assert setup_differences(old, spawned) == ["workers 4 vs 8", "isolation forkserver vs spawn"]


def test_the_ci_gate_compares_an_older_baseline_with_a_run_of_this_format(tmp_path: Path, capsys):
    """CI's gate: the committed counted baseline (flat) against a run this harness published
    (nested), here the same run published again in this format: the same setup, no regression."""
    base = PERF / "baseline-slice-instructions"
    for path in base.glob("perf-*.json"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    (manifest_path,) = tmp_path.glob("perf-manifest-*.json")
    manifest_path.write_bytes(as_format_2(decode_manifest(manifest_path.read_bytes())))
    (summary_path,) = tmp_path.glob("perf-summary-*.json")
    summary = json.loads(summary_path.read_text())
    summary["format_version"] = FORMAT_VERSION
    summary_path.write_text(json.dumps(summary))
    (baseline,) = base.glob("perf-manifest-*.json")
    argv = ["compare", str(baseline), str(summary_path), "--metric", "instructions", "--same-runtime", "--fail-on", "regression"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    workers = json.loads(manifest_path.read_text())
    workers["settings"]["workers"] = 8
    manifest_path.write_text(json.dumps(workers))
    assert cli.main(argv) == 2
    assert "workers 4 vs 8" in capsys.readouterr().err


def test_a_run_begun_by_an_older_harness_is_written_back_in_this_format(tmp_path: Path):
    """--resume of a run directory an older harness made: its manifest is read flat, then written
    nested at every step of the attempt, and read back as such."""
    run_dir = RunDir(tmp_path / "run-20261125T184431Z")
    run_dir.path.mkdir()
    (run_dir.path / "manifest.json").write_bytes(committed("baseline-slice"))
    manifest = run_dir.read_manifest()
    assert manifest.format_version == 1
    run_dir.write_manifest(manifest)
    again = run_dir.read_manifest()
    assert again.format_version == FORMAT_VERSION and again.settings == manifest.settings
    assert "settings" in json.loads((run_dir.path / "manifest.json").read_text())
