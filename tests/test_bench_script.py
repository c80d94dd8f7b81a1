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


def _bench_module():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import bench
    finally:
        sys.path.remove(str(REPO / "scripts"))
    return bench


@pytest.mark.parametrize("published", [True, False], ids=["parts", "no-parts"])
def test_the_tree_split_reads_the_summarys_parts_or_falls_back_to_its_totals(published):
    """In process, no episodes: the split of the forkserver tree comes from the summary's
    ``resources.parts`` when the harness publishes them, from its CPU totals otherwise (no
    user/sys/fault split, no zygote), and the rest is the tree less the parts."""
    bench = _bench_module()
    part = {"user_s": 0.3, "sys_s": 0.1, "minor_faults": 400}
    resources = {
        "harness_cpu_s": 0.4,
        "workers_cpu_s": 0.4,
        "episode_cpu_s_total": 0.4,
        "harness_cpu_ms_per_episode": 200.0,
        "harness_peak_rss_bytes": 1,
    }
    if published:
        resources["parts"] = {name: dict(part) for name in ("harness", "workers", "zygote", "episodes")}
    stats = {"mean": 0.1, "p95": 0.1}
    summary = {"resources": resources, "episodes": 4, "success_count": 4, "failure_count": 0, "elapsed_s": 1.0}
    summary.update(throughput_eps=4.0, episode_s=stats, wall_clock_s=stats)
    figures = bench._harness_figures(json.dumps({"summary": summary}))
    record = {"tree_cpu_s": 2.0, "tree_user_s": 1.5, "tree_sys_s": 0.5, "tree_minor_faults": 2000}
    parts = bench.parts_per_episode(figures["raw_parts"], record, 4)
    assert parts["episodes"]["cpu_ms"] == 100.0
    if published:
        assert parts["zygote"] == {"user_ms": 75.0, "sys_ms": 25.0, "cpu_ms": 100.0, "minor_faults": 100.0}
        assert parts["rest"] == {"user_ms": 75.0, "sys_ms": 25.0, "cpu_ms": 100.0, "minor_faults": 100.0}
    else:
        assert parts["zygote"]["cpu_ms"] is None and parts["harness"]["user_ms"] is None
        assert parts["rest"]["cpu_ms"] == 200.0 and parts["rest"]["minor_faults"] is None
