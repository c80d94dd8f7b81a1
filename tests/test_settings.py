"""One set of run settings (tracecore_perf/settings.py): run's flags, ab's flags, a matrix
file's keys and the manifest's record are all made from it, so a setting exists everywhere or
nowhere. In process, no episode."""

from __future__ import annotations

import argparse
from pathlib import Path

import msgspec
import pytest

from tracecore_perf import cli
from tracecore_perf.matrix import plan
from tracecore_perf.matrix.cells import run_argv
from tracecore_perf.matrix.models import CellSettings
from tracecore_perf.models import Manifest
from tracecore_perf.settings import NAMES, RunSettings, described, recorded

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


def test_the_manifest_records_every_setting():
    fields = set(Manifest.__struct_fields__)
    for name in NAMES:
        assert name in fields or name in ("python", "sample_interval"), f"{name} is not recorded"
    manifest = msgspec.json.decode(
        next((REPO / "deliverables/perf/baseline-slice-instructions").glob("perf-manifest-*.json")).read_bytes(), type=Manifest
    )
    settings = recorded(manifest)
    assert (settings.episodes, settings.workers, settings.strict_spec, settings.instructions) == (24, 4, True, True)
    assert settings.python == manifest.interpreter.executable
