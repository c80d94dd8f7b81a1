"""Smoke test of scripts/bench.py: a tiny run of all five modes (two interleaved rounds) writes a
report with a positive throughput for each, the fork floor's ratio and its split of the tree.
It asserts the shape of the output, never a timing."""

from __future__ import annotations

import json
import sys

import pytest

from conftest import REPO, run_watched

pytestmark = pytest.mark.slow  # every test here runs the harness: real episodes


def test_bench_smoke(tmp_path):
    done = run_watched(
        [
            sys.executable,
            str(REPO / "scripts" / "bench.py"),
            "--episodes",
            "4",
            "--workers",
            "2",
            "--batch-workers",
            "2",
            "--slice-repeats",
            "0",
            "--rounds",
            "2",
            "--out-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (report_path,) = tmp_path.glob("bench-*.json")
    report = json.loads(report_path.read_text())
    assert set(report["modes"]) == {"run_batch", "spawn", "forkserver", "inprocess", "forkfloor"}
    for name, mode in report["modes"].items():
        assert mode["returncode"] == 0, name
        assert mode["passed"] == 4 and mode["failed"] == 0, name
        assert mode["whole_eps"] > 0 and mode["in_run_eps"] > 0, name
        assert mode["tree_cpu_ms_per_episode"] > 0, name
        assert len(mode["rounds"]) == 2, name
    floor = report["modes"]["forkfloor"]
    assert floor["floor"]["children"]["user_s"] > 0 and floor["floor"]["children"]["minor_faults"] > 0
    for name in ("forkserver", "forkfloor"):
        parts = report["modes"][name]["parts_per_episode"]
        assert set(parts) == {"harness", "workers", "zygote", "episodes", "rest"}, name
        assert parts["episodes"]["cpu_ms"] > 0 and parts["harness"]["cpu_ms"] > 0, name
    assert report["ratios"]["forkserver_vs_fork_floor"] > 0
    assert len(report["ratios"]["per_round"]) == 2
    floor_targets = [t for t in report["targets"] if t["target"].startswith("fork floor")]
    assert len(floor_targets) == 1 and floor_targets[0]["value"] == report["ratios"]["forkserver_vs_fork_floor"]
    for name in ("spawn", "forkserver"):
        assert report["modes"][name]["harness_cpu_ms_per_episode"] > 0
        assert report["modes"][name]["harness_peak_rss_bytes"] > 0
    assert {t["basis"] for t in report["targets"]} >= {"whole", "in-run"}
    text = (tmp_path / report_path.name.replace(".json", ".md")).read_text()
    assert text.startswith("# tracecore-perf benchmark")
    assert "Where the gap is" in text and "Per round" in text


def test_the_cost_benchmarks_reference_figure_is_committed():
    """``scripts/episode_cost.py`` judges workers + harness against its first figure, a file
    kept in deliverables: the benchmark cannot give a verdict without it."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import episode_cost
    finally:
        sys.path.remove(str(REPO / "scripts"))
    reference = json.loads(episode_cost.OWN_REFERENCE.read_text())["own"]["both"]
    assert reference["marginal"] > 1_000_000 and reference["average"] > reference["marginal"]
