"""Publishing and reading back, in-process, on run directories built by hand: the summary's
folds (``SeriesIndex``, ``distribution``), ``publish()``, ``format_version``, and the loaders
(``published.locate`` by stamp, run directory, artifact; and by a folder
holding one run)."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import msgspec
import pytest
from runs import row

from tracecore_perf.errors import UsageError
from tracecore_perf.models import (
    ARTIFACT_KINDS,
    FORMAT_VERSION,
    AttemptRecord,
    HostContext,
    Integrity,
    Interpreter,
    Manifest,
    Sample,
    ScenarioRow,
    artifact_path,
)
from tracecore_perf.published import PublishedRun, format_version, locate
from tracecore_perf.run.publish import SeriesIndex, publish
from tracecore_perf.run.rundir import RunDir
from tracecore_perf.settings import RunSettings
from tracecore_perf.stats import distribution

STAMP = "20260101T000000Z"
REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / "deliverables" / "perf" / "baseline"  # the committed 1,000-episode run


def manifest(run_dir: RunDir, *, episodes: int = 4, compress: bool = False) -> Manifest:
    return Manifest(
        generated_at="2026-01-01T00:00:00+00:00",
        scenario=[ScenarioRow(agent="a.py", task_ref="t@1", seed=0)],
        system_samples={"available": True},
        artifact_set=[],
        settings=RunSettings(
            episodes=episodes,
            workers=2,
            timeout=180.0,
            strict_spec=True,
            compress=compress,
            isolation="forkserver",
            python="/usr/bin/python3",
            keep_runs="all",
            sample_interval=0.5,
        ),
        agents={"a.py": "/abs/a.py"},
        stamp=run_dir.stamp,
        status="complete",
        interpreter=Interpreter(executable="/usr/bin/python3", python_version="3.11.9", tracecore_version="1.1.3"),
        host=HostContext(
            cpu_model="Test CPU",
            logical_cores=2,
            memory_total_bytes=8 << 30,
            os="Linux",
            kernel="6.1",
            machine="x86_64",
            hostname="test",
            load_avg_start=[0.1, 0.1, 0.1],
            cpu_busy_percent_start=1.0,
            quiet=True,
            quiet_reason=None,
        ),
        machine_class="abcdef012345",
        machine_class_fields={"cpu_model": "Test CPU"},
        run_dir=str(run_dir.path),
        harness_version="0.1.0",
        attempts=[AttemptRecord(attempt=1, started_at="2026-01-01T00:00:00+00:00", status="complete")],
    )


def sample(t: float, rss: int, *, procs: int = 1) -> Sample:
    return Sample(
        t_s=t,
        cpu_percent=50.0,
        memory_total_bytes=8 << 30,
        memory_available_bytes=4 << 30,
        harness_rss_bytes=rss,
        harness_cpu_percent=5.0,
        workers_rss_bytes=1000,
        episode_processes=procs,
        episode_rss_bytes=2000,
        episodes_done=0,
        episodes_failed=0,
    )


def lines(*items: msgspec.Struct) -> bytes:
    return b"".join(msgspec.json.encode(item) + b"\n" for item in items)


@pytest.fixture
def run_dir(tmp_path: Path) -> RunDir:
    """A finished run of 4 episodes, written out of order, with one failure, one duplicate
    row of an episode (a resume's: the first wins) and a torn last line."""
    rd = RunDir(tmp_path / "out" / f"run-{STAMP}")
    rd.path.parent.mkdir()
    rd.create()
    rows = [
        row(2, wall=0.3, run_id="r2"),
        row(0, wall=0.1, run_id="r0"),
        row(3, wall=0.4, success=False, error="timeout: killed", timed_out=True, run_id=None),
        row(1, wall=0.2, run_id="r1", artifact_bytes=5000),
        row(0, wall=9.9, run_id="dup"),
    ]
    rd.series.write_bytes(lines(*rows) + b'{"episode": 5, "epis')
    rd.samples.write_bytes(lines(sample(0.1, 100, procs=2), sample(0.5, 300, procs=1)))
    for run_id in ("r0", "r1", "r2"):
        (rd.runs_root / f"{run_id}.json").write_text("x" * 100)
    return rd


def test_distribution_of_a_known_sample():
    assert distribution([]) == distribution(()) and distribution([]).count == 0 and distribution([]).p50 is None
    one = distribution([2.0])
    assert (one.count, one.mean, one.p50, one.p99, one.max) == (1, 2.0, 2.0, 2.0, 2.0)
    hundred = distribution(float(v) for v in range(1, 101))
    assert (hundred.count, hundred.mean, hundred.p50, hundred.p90, hundred.p95, hundred.p99, hundred.max) == (
        100,
        50.5,
        50.5,
        90.1,
        95.05,
        99.01,
        100.0,
    )


def test_the_series_index_keeps_each_episodes_first_readable_row(run_dir):
    index = SeriesIndex(run_dir, with_run_ids=True)
    assert index.count == 4 and index.done() == {0, 1, 2, 3}
    assert [index.indices[p] for p in index.in_episode_order()] == [0, 1, 2, 3]
    assert list(index.wall) == [0.3, 0.1, 0.4, 0.2]  # the duplicate's 9.9 is not folded in
    assert index.passed == 3 and index.timed_out == 1 and index.reasons == {"timeout: killed": 1}
    assert set(index.run_ids) == {"r0", "r1", "r2"} and index.failed_run_ids == set()
    assert index.artifact_bytes_total == 4000 * 3 + 5000 and index.artifact_bytes_max == 5000
    assert index.has(3) and not index.has(4) and not index.has(99)


def test_a_run_without_rows_indexes_as_empty(tmp_path):
    rd = RunDir(tmp_path / f"run-{STAMP}")
    rd.create()
    index = SeriesIndex(rd)
    assert index.count == 0 and index.in_episode_order() == []


def _publish(run_dir: RunDir, **overrides):
    options = {
        "index": SeriesIndex(run_dir),
        "metrics_rows": [{"metric": "m", "value": 1}],
        "elapsed_s": 2.0,
        "harness_cpu_s": 0.5,
        "harness_peak_rss_bytes": 50_000_000,
        "workers_cpu_s": 0.3,
        "episodes_this_attempt": 4,
    }
    options.update(overrides)
    return publish(run_dir, manifest(run_dir), **options)


def test_publish_writes_the_artifact_set_from_a_run_directory(run_dir):
    publication = _publish(run_dir)
    out = run_dir.output_dir
    assert set(publication.artifacts) == set(ARTIFACT_KINDS)
    assert all(Path(p).is_file() for p in publication.artifacts.values())
    summary = json.loads(artifact_path(out, "summary", STAMP).read_text())
    assert summary["format_version"] == FORMAT_VERSION
    assert (summary["episodes"], summary["success_count"], summary["failure_count"]) == (4, 3, 1)
    assert summary["summary"] == {
        "total": 4,
        "passed": 3,
        "failed": 1,
        "workers": 2,
        "p50_wall_clock_s": 0.25,
        "p95_wall_clock_s": 0.385,
    }
    assert summary["failure_reasons"] == {"timeout: killed": 1} and summary["timed_out_count"] == 1
    assert summary["run_artifacts"]["file_count"] == 3 and summary["run_artifacts"]["total_bytes"] == 300
    assert summary["throughput_eps"] == 2.0 and summary["resources"]["harness_cpu_ms_per_episode"] == 200.0
    assert summary["system_samples"]["sample_count"] == 2 and summary["resources"]["peak_episode_processes"] == 2
    assert summary["integrity"]["clean"] is True
    series = json.loads(artifact_path(out, "series", STAMP).read_text())
    assert [r["episode_index"] for r in series] == [0, 1, 2, 3] and series[0]["run_id"] == "r0"
    published_manifest = json.loads(artifact_path(out, "manifest", STAMP).read_text())
    assert published_manifest["format_version"] == FORMAT_VERSION
    assert published_manifest["artifact_set"] == list(ARTIFACT_KINDS)
    assert run_dir.read_manifest().format_version == FORMAT_VERSION
    assert json.loads(artifact_path(out, "metrics", STAMP).read_text()) == [{"metric": "m", "value": 1}]
    assert len(json.loads(artifact_path(out, "samples", STAMP).read_text())) == 2


def test_publish_with_compress_bundles_the_json_files_byte_for_byte(run_dir):
    publication = publish(
        run_dir,
        manifest(run_dir, compress=True),
        index=SeriesIndex(run_dir),
        metrics_rows=[],
        elapsed_s=1.0,
        harness_cpu_s=0.0,
        harness_peak_rss_bytes=0,
        workers_cpu_s=0.0,
        episodes_this_attempt=0,
        integrity=Integrity(clean=False, problems=["series.jsonl: 1 lines the harness did not write (set aside)"]),
    )
    with zipfile.ZipFile(publication.artifacts["artifacts"]) as archive:
        for kind in ARTIFACT_KINDS:
            path = Path(publication.artifacts[kind])
            assert archive.read(path.name) == path.read_bytes()
    assert publication.summary.throughput_eps is None and publication.summary.integrity.clean is False


@pytest.fixture
def published(run_dir) -> RunDir:
    _publish(run_dir)
    return run_dir


@pytest.mark.parametrize("how", ["stamp", "run_dir", "manifest", "summary", "series"])
def test_locate_a_published_run_by_stamp_run_directory_or_artifact(published, how):
    out = published.output_dir
    ref = {
        "stamp": STAMP,
        "run_dir": str(published.path),
        "manifest": str(artifact_path(out, "manifest", STAMP)),
        "summary": str(artifact_path(out, "summary", STAMP)),
        "series": str(artifact_path(out, "series", STAMP)),
    }[how]
    run = locate(ref, search_dir=out)
    assert run.stamp == STAMP and run.output_dir == out
    assert run.summary().episodes == 4 and len(run.series()) == 4 and len(run.samples()) == 2
    assert run.manifest().format_version == FORMAT_VERSION


def test_a_folder_holding_one_run_names_it(published, tmp_path):
    folder = tmp_path / "baseline"
    folder.mkdir()
    for kind in ARTIFACT_KINDS:
        shutil.copy(artifact_path(published.output_dir, kind, STAMP), folder)
    assert locate(str(folder), tmp_path).stamp == STAMP
    shutil.copy(artifact_path(published.output_dir, "manifest", STAMP), folder / "perf-manifest-20260202T000000Z.json")
    with pytest.raises(UsageError, match="holds 2 published runs"):
        locate(str(folder), tmp_path)
    with pytest.raises(UsageError, match="holds no published run"):
        locate(str(tmp_path / "out" / f"run-{STAMP}" / "logs"), tmp_path)


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("20990101T000000Z", "has no published manifest"),
        ("not-a-run", "no such run, run directory or artifact"),
        ("some/dir/20260101T000000Z", "no such run"),
    ],
)
def test_a_run_that_is_not_there_is_one_usage_error(published, ref, message):
    with pytest.raises(UsageError, match=message):
        locate(ref, search_dir=published.output_dir)


def test_a_file_that_is_not_an_artifact_is_refused(tmp_path):
    stray = tmp_path / "notes.json"
    stray.write_text("{}")
    with pytest.raises(UsageError, match="not a tracecore-perf run or artifact"):
        locate(stray)


@pytest.mark.parametrize("kind", ["manifest", "summary"])
def test_a_run_of_a_newer_format_is_refused_in_one_clear_error(published, kind):
    path = artifact_path(published.output_dir, kind, STAMP)
    data = json.loads(path.read_text())
    data["format_version"] = FORMAT_VERSION + 1
    data["a_field_of_the_future"] = {"x": 1}
    path.write_text(json.dumps(data))
    with pytest.raises(UsageError, match=f"format version {FORMAT_VERSION + 1}, newer than this tracecore-perf reads"):
        locate(STAMP, search_dir=published.output_dir)
    run = PublishedRun(stamp=STAMP, output_dir=published.output_dir, paths=locate_paths(published))
    with pytest.raises(UsageError, match="newer than this tracecore-perf reads"):
        run.manifest() if kind == "manifest" else run.summary()


def locate_paths(run_dir: RunDir) -> dict[str, Path]:
    return {kind: artifact_path(run_dir.output_dir, kind, STAMP) for kind in ARTIFACT_KINDS}


def test_a_summary_from_before_format_version_reads_as_version_0(published):
    """(A manifest from before it is a run of format 0: the committed baseline's, below.)"""
    path = artifact_path(published.output_dir, "summary", STAMP)
    data = json.loads(path.read_text())
    del data["format_version"]
    path.write_text(json.dumps(data))
    assert format_version(path) == 0
    assert locate(STAMP, search_dir=published.output_dir).summary().format_version == 0


def test_the_committed_baseline_reads_and_so_does_one_from_before_format_version(tmp_path):
    run = locate(str(BASELINE), BASELINE)
    assert format_version(run.paths["manifest"]) == format_version(run.paths["summary"]) == 1  # published flat
    assert run.manifest().settings.episodes == run.summary().episodes == 1000
    # the same run as a harness published it before format_version existed: read as version 0
    for path in BASELINE.glob("perf-*.json"):
        document = json.loads(path.read_text())
        if isinstance(document, dict):
            document.pop("format_version", None)
        (tmp_path / path.name).write_text(json.dumps(document))
    old = locate(str(tmp_path), tmp_path)
    assert format_version(old.paths["manifest"]) == format_version(old.paths["summary"]) == 0
    assert old.manifest().format_version == 0 and old.manifest().settings == run.manifest().settings
    assert old.manifest().settings.episodes == old.summary().episodes == 1000


def test_a_manifest_that_is_not_json_is_a_usage_error(published):
    artifact_path(published.output_dir, "manifest", STAMP).write_text("{not json")
    with pytest.raises(UsageError, match="not a tracecore-perf artifact"):
        locate(STAMP, search_dir=published.output_dir)
