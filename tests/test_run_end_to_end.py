"""The everyday slice, for real: 24 TraceCore episodes through `python -m tracecore_perf`,
then every published artifact read back."""

from __future__ import annotations

import json
import shutil
import sys
import zipfile

import pytest

from tracecore_perf.models import FORMAT_VERSION

from conftest import REPO, harness, leftover_processes, published, run_watched

pytestmark = pytest.mark.slow  # every test here runs the harness: real episodes

SERIES_SEED_FIELDS = {
    "episode",
    "episode_index",
    "agent",
    "task_ref",
    "seed",
    "success",
    "wall_clock_s",
    "error",
    "artifact_bytes",
    "llm_trace_entries",
    "prompt_bytes",
    "completion_bytes",
    "tokens_used",
}
SERIES_MEASUREMENT_FIELDS = {
    "episode_s",
    "queue_s",
    "started_s",
    "cpu_user_s",
    "cpu_sys_s",
    "max_rss_bytes",
    "returncode",
    "timed_out",
}


@pytest.fixture(scope="module")
def slice_run(tmp_path_factory):
    """One real 24-episode run, with stale TraceCore artifacts lying around both in the
    working directory and in the output directory, as on a maintainer's checkout."""
    work = tmp_path_factory.mktemp("slice")
    out = work / "deliverables" / "perf"
    stale = json.loads((REPO / "tests" / "data" / "stale_run_artifact.json").read_text())
    for root in (work / ".agent_bench" / "runs", out / ".agent_bench" / "runs"):
        root.mkdir(parents=True)
        for n in range(5):
            (root / f"stale{n}.json").write_text(json.dumps({**stale, "run_id": f"stale{n}"}))
    done = harness("--episodes", "24", "--workers", "4", "--strict-spec", "--compress", "--json", cwd=work)
    return work, out, done


def test_the_slice_succeeds_and_prints_the_json_payload(slice_run):
    work, out, done = slice_run
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert set(payload) == {"ok", "stamp", "machine_id", "python", "tracecore", "artifacts", "summary"}
    assert payload["ok"] is True and payload["machine_id"] == published(out, "manifest")["machine_class"]
    assert set(payload["artifacts"]) == {"manifest", "summary", "metrics", "series", "samples", "artifacts"}
    for path in payload["artifacts"].values():
        assert (work / path).is_file() and (work / path).parent == out
    assert payload["summary"]["success_count"] == 24


def test_manifest_has_the_seed_fields_and_the_run_context(slice_run):
    _, out, _ = slice_run
    manifest = published(out, "manifest")
    settings = manifest["settings"]  # the one record; the guide's fields at the top level are its copy
    assert settings["episodes"] == 24 and settings["workers"] == 4 and settings["timeout"] == 180
    assert settings["strict_spec"] is True and settings["compress"] is True
    assert all(manifest[name] == settings[name] for name in ("episodes", "workers", "timeout", "strict_spec", "compress"))
    assert manifest["format_version"] == FORMAT_VERSION and "isolation" not in manifest and "keep_runs" not in manifest
    assert [row["task_ref"] for row in manifest["scenario"]][0] == "filesystem_hidden_config@1"
    assert manifest["system_samples"]["provider"] == "psutil" and "cpu_percent" in manifest["system_samples"]["fields"]
    assert manifest["artifact_set"] == ["manifest", "summary", "metrics", "series", "samples", "artifacts"]
    assert manifest["status"] == "complete"
    assert settings["isolation"] in ("forkserver", "spawn")
    assert settings["python"] == manifest["interpreter"]["executable"]
    assert manifest["interpreter"]["tracecore_version"].startswith("1.")
    host = manifest["host"]
    assert host["logical_cores"] >= 1 and host["memory_total_bytes"] > 0 and host["cpu_model"]
    # the machine id is the hardware's alone: Python and TraceCore are the interpreter's fields
    assert len(manifest["machine_class"]) == 12
    assert set(manifest["machine_class_fields"]) == {"cpu_model", "logical_cores", "memory_gib", "os", "machine"}
    assert manifest["attempts"][0]["episodes_run"] == 24


def test_summary_has_the_seed_fields(slice_run):
    _, out, _ = slice_run
    summary = published(out, "summary")
    assert summary["summary"] == {
        "total": 24,
        "passed": 24,
        "failed": 0,
        "workers": 4,
        "p50_wall_clock_s": summary["wall_clock_s"]["p50"],
        "p95_wall_clock_s": summary["wall_clock_s"]["p95"],
    }
    assert summary["episodes"] == 24 and summary["success_count"] == 24 and summary["failure_count"] == 0
    assert summary["failure_reasons"] == {}
    assert 0 < summary["max_wall_clock_s"] <= 15
    artifacts = summary["run_artifacts"]
    # this run's own footprint: the stale files lying around are not counted
    assert artifacts["file_count"] == 24
    assert artifacts["root"].endswith(".agent_bench/runs") and "/run-" in artifacts["root"]
    assert artifacts["avg_bytes"] == pytest.approx(artifacts["total_bytes"] / 24, abs=0.01)
    samples = summary["system_samples"]
    assert set(samples) >= {
        "available",
        "provider",
        "cpu_percent",
        "process_rss_bytes",
        "system_memory_total_bytes",
        "system_memory_available_bytes",
    }
    assert samples["available"] is True and samples["process_rss_bytes"] > 0
    verbosity = summary["telemetry_verbosity"]
    assert set(verbosity) == {
        "artifact_bytes_total",
        "artifact_bytes_avg",
        "artifact_bytes_max",
        "llm_trace_entries_total",
        "llm_trace_entries_avg",
        "prompt_bytes_total",
        "completion_bytes_total",
        "tokens_used_total",
    }
    assert verbosity["artifact_bytes_total"] > 0 and verbosity["llm_trace_entries_total"] == 0
    assert summary["throughput_eps"] > 0 and summary["elapsed_s"] > 0


def test_series_has_one_measured_row_per_episode(slice_run):
    _, out, _ = slice_run
    series = published(out, "series")
    assert [row["episode_index"] for row in series] == list(range(24))
    for row in series:
        assert set(row) >= SERIES_SEED_FIELDS | SERIES_MEASUREMENT_FIELDS
        assert row["episode"] == row["episode_index"] + 1
        assert row["success"] is True and row["error"] is None and row["returncode"] == 0 and not row["timed_out"]
        assert 0 < row["episode_s"] < row["wall_clock_s"]
        # The kernel splits CPU time into user and system by sampling ticks (HZ=250 here), so a
        # short episode may honestly show 0 of either; their sum is its measured run time.
        assert row["cpu_user_s"] >= 0 and row["cpu_sys_s"] >= 0 and row["cpu_user_s"] + row["cpu_sys_s"] > 0
        assert row["max_rss_bytes"] > 1_000_000 and row["artifact_bytes"] > 0
    assert series[4]["seed"] == 42 + 4 and series[4]["agent"] == "agents/toy_agent.py"


def test_metrics_are_tracecores_own_over_exactly_this_run(slice_run):
    _, out, _ = slice_run
    metrics = published(out, "metrics")
    assert sum(row["run_count"] for row in metrics) == 24
    assert {row["task_ref"] for row in metrics} == {
        "filesystem_hidden_config@1",
        "rate_limited_api@1",
        "rate_limited_chain@1",
        "log_alert_triage@1",
    }
    assert all(row["reproducibility_rate"] == 1.0 for row in metrics)


def test_samples_are_a_time_series_with_a_real_first_reading(slice_run):
    _, out, _ = slice_run
    samples = published(out, "samples")
    assert samples, "the monitor wrote no samples"
    assert samples[0]["cpu_percent"] > 0  # primed counters: not the unprimed 0.0
    assert all(b["t_s"] > a["t_s"] for a, b in zip(samples, samples[1:], strict=False))
    assert samples[-1]["episodes_done"] == 24


def test_zip_holds_the_json_files_byte_for_byte(slice_run):
    _, out, _ = slice_run
    (bundle,) = out.glob("perf-artifacts-*.zip")
    with zipfile.ZipFile(bundle) as archive:
        names = sorted(archive.namelist())
        assert len(names) == 5
        for name in names:
            assert archive.read(name) == (out / name).read_bytes()


def test_run_directory_holds_the_working_state(slice_run):
    _, out, _ = slice_run
    (run_dir,) = out.glob("run-*")
    assert len((run_dir / "series.jsonl").read_text().splitlines()) == 24
    assert len(list((run_dir / ".agent_bench" / "runs").glob("*.json"))) == 24
    log_lines = [json.loads(line) for line in (run_dir / "harness.log").read_text().splitlines()]
    assert any(line["event"] == "run.start" for line in log_lines)
    assert leftover_processes(run_dir) == []


def test_the_seed_scaffolds_script_path_takes_the_same_flags(tmp_path):
    shutil.copytree(REPO / "scripts", tmp_path / "scripts")
    done = harness("--episodes", "2", "--workers", "2", "--output-dir", str(tmp_path / "o"), "--json", cwd=tmp_path)
    scripted = run_watched(
        [
            sys.executable,
            str(REPO / "scripts" / "perf_harness.py"),
            "--episodes",
            "2",
            "--workers",
            "2",
            "--output-dir",
            str(tmp_path / "p"),
            "--json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == scripted.returncode == 0, scripted.stderr
    assert json.loads(scripted.stdout)["summary"]["episodes"] == 2
