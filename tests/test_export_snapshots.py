"""Every export format (text, json, github, junit, markdown) of fixed ``Verdict`` and ``Comparison``
values, held to snapshots in ``tests/snapshots/`` (one file per result and format). In-process,
no run needed.

A change to a format shows up as a diff of its snapshot. When the change is meant, regenerate
the snapshots and review the diff before committing::

    UPDATE_SNAPSHOTS=1 python -m pytest tests/test_export_snapshots.py

Only :func:`render` knows the exporters' API; the rest of the module deals in text.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from tracecore_perf.export import FORMATS, cases
from tracecore_perf.export import junit as junit_format
from tracecore_perf.verdicts.models import (
    Comparison,
    Estimate,
    Finding,
    FindingCode,
    GroupComparison,
    Notice,
    ThresholdResult,
    TrendCheck,
    Verdict,
    WarningCode,
)

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
UPDATE = os.environ.get("UPDATE_SNAPSHOTS") == "1"
SUFFIX = {"text": "txt", "json": "json", "github": "github.txt", "junit": "junit.xml", "markdown": "md"}


def passing_verdict() -> Verdict:
    return Verdict(
        ok=True,
        stamp="20260101T000000Z",
        thresholds=[
            ThresholdResult(name="failure_count", limit=0, actual=0, ok=True, message="failure_count 0 <= 0"),
            ThresholdResult(
                name="max_wall_clock_s", limit=15.0, actual=0.11, ok=True, message="max_wall_clock_s 0.11 s <= 15.0 s"
            ),
            ThresholdResult(name="failure_reasons", limit=[], actual=[], ok=True, message="no unexpected failure reasons"),
        ],
        findings=[],
        trend_checks=["long_tail_spike", "failure_cluster"],
        trends=[
            TrendCheck(
                code=FindingCode.LONG_TAIL_SPIKE,
                state="insufficient data",
                message="needs at least 12 episodes in one scenario row, the run has 6",
                have=6,
                needed=12,
                unit="episodes in one scenario row",
            ),
            TrendCheck(
                code=FindingCode.FAILURE_CLUSTER,
                state="clear",
                message="no failed episode to cluster",
                have=0,
                needed=0,
                unit="failed episodes",
            ),
        ],
    )


def failing_verdict() -> Verdict:
    return Verdict(
        ok=False,
        stamp="20260102T000000Z",
        thresholds=[
            ThresholdResult(name="failure_count", limit=0, actual=3, ok=False, message="failure_count 3 > 0"),
            ThresholdResult(
                name="failure_reasons",
                limit=["timeout"],
                actual=["crashed: exit code 3"],
                ok=False,
                message="1 unexpected failure reason(s): crashed: exit code 3",
            ),
        ],
        findings=[
            Finding(
                code=FindingCode.LONG_TAIL_SPIKE,
                severity="warning",
                explanation="2 of 40 episodes of a.py on t@1 took over 1.5 s against a median of 0.05 s (worst: episode 7, 3 s)",
                evidence={"scenario_row": "a.py on t@1", "median_s": 0.05, "cutoff_s": 1.5},
                episodes=[7, 31],
            ),
            Finding(
                code=FindingCode.MEMORY_GROWTH,
                severity="error",
                explanation="harness RSS grows steadily: +64 MiB over 20.0 s (3.2 MiB/s, Spearman rho 0.99) with no plateau",
                evidence={"series": "harness_rss_bytes", "growth_bytes": 67108864},
            ),
        ],
        notices=[
            Notice(
                code=WarningCode.RUN_INTERRUPTED,
                message="run 20260102T000000Z was interrupted: 40 of 100 episodes have rows",
            ),
            Notice(
                code=WarningCode.BUSY_HOST,
                message="host was busy at the start of the run (load 3.1); latency figures are noisy",
            ),
        ],
        trend_checks=["long_tail_spike", "memory_growth"],
        trends=[
            TrendCheck(code=FindingCode.LONG_TAIL_SPIKE, state="finding", message="1 finding(s)", have=40, needed=12),
            TrendCheck(code=FindingCode.MEMORY_GROWTH, state="finding", message="1 finding(s)", have=30, needed=10),
        ],
    )


def _row(agent: str, **fields) -> GroupComparison:
    values = dict(
        agent=agent,
        task_ref="t@1",
        metric="cpu_s",
        baseline_n=60,
        current_n=60,
        baseline_median_s=0.02,
        current_median_s=0.02,
        ratio=Estimate(value=1.0, low=0.9, high=1.11),
        shift_s=Estimate(value=0.0),
        p_value=0.9,
        p_adjusted=0.9,
        verdict="no change",
        success_rate_baseline=1.0,
        success_rate_current=1.0,
        success_rate_delta=0.0,
        success_p_value=1.0,
        artifact_bytes_mean_delta=0.0,
        cpu_s_median_delta=0.0,
        max_rss_bytes_median_delta=0.0,
        regression=False,
        se_log_ratio=0.0707,
        sampling_se=[0.01, 0.01],
        drift_within=[None, 0.02],
        blocks=[6, 6],
        p_value_episodes=0.8,
    )
    values.update(fields)
    return GroupComparison(**values)


def comparison() -> Comparison:
    return Comparison(
        ok=False,
        baseline="20260101T000000Z",
        current="20260102T000000Z",
        metric="cpu_s",
        alpha=0.01,
        noise=0.05,
        margin=0.1,
        drift=0.05,
        verdict="slower",
        rows=[
            _row(
                "busy.py",
                current_median_s=0.03,
                ratio=Estimate(value=1.5, low=1.3, high=1.73),
                shift_s=Estimate(value=0.01),
                p_value=1e-6,
                p_adjusted=2e-6,
                verdict="slower",
                regression=True,
                cpu_s_median_delta=0.01,
            ),
            _row("toy.py"),
            _row(
                "rare.py",
                baseline_n=3,
                current_n=2,
                current_median_s=None,
                ratio=Estimate(value=None),
                shift_s=Estimate(value=None),
                p_value=None,
                p_adjusted=None,
                verdict="not comparable",
                success_rate_current=0.4,
                success_rate_delta=-0.6,
                success_p_value=0.02,
                se_log_ratio=None,
                sampling_se=None,
                drift_within=None,
                p_value_episodes=None,
            ),
        ],
        baseline_only=["gone.py on t@1"],
        current_only=[],
        throughput_eps_baseline=20.0,
        throughput_eps_current=15.0,
        throughput_delta=-0.25,
        success_rate_delta=-0.02,
        artifact_bytes_total_delta=1200,
        resource_deltas={"episode_max_rss_bytes": 1048576.0, "harness_cpu_ms_per_episode": 0.5, "system_cpu_percent": None},
        machine_class_match=False,
        machine_ids=["0123456789ab", "ba9876543210"],
        setup_match=False,
        setup_differences=["workers 4 vs 2"],
        notices=[
            Notice(
                code=WarningCode.MACHINE_CLASS_MISMATCH,
                message="MACHINE CLASS MISMATCH: baseline aaaa vs current bbbb (differ in cpu_model); "
                "latency differences may be the machines, not the code",
            ),
            Notice(
                code=WarningCode.SETUP_MISMATCH,
                message="SET-UP MISMATCH: the runs were set up differently (workers 4 vs 2); "
                "latency differences may be the set-up, not the code",
            ),
        ],
    )


RESULTS = {"verdict-pass": passing_verdict, "verdict-fail": failing_verdict, "comparison": comparison}


def render(fmt: str, result: Verdict | Comparison, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Everything a format produces, as one text: what the command prints, and for ``github``
    the step summary it appends, for ``junit`` the XML file it writes."""
    from tracecore_perf.cli.output import emit

    stream = io.StringIO()
    junit_file = tmp_path / "report.junit.xml"
    step_summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    emit(fmt, result, junit_file, stream=stream)
    out = stream.getvalue().replace(str(junit_file), "<junit-file>")
    if fmt == "github":
        out += "--- $GITHUB_STEP_SUMMARY ---\n" + step_summary.read_text(encoding="utf-8")
    if fmt == "junit":
        out += "--- <junit-file> ---\n" + junit_file.read_text(encoding="utf-8") + "\n"
    return out


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("name", sorted(RESULTS))
def test_each_format_matches_its_snapshot(name, fmt, tmp_path, monkeypatch):
    rendered = render(fmt, RESULTS[name](), tmp_path, monkeypatch)
    snapshot = SNAPSHOTS / f"{name}.{SUFFIX[fmt]}"
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        snapshot.write_text(rendered, encoding="utf-8")
    assert snapshot.is_file(), f"no snapshot {snapshot.name}: run with UPDATE_SNAPSHOTS=1 to write it"
    assert rendered == snapshot.read_text(encoding="utf-8")


def test_every_format_has_a_snapshot_and_no_snapshot_is_stale():
    expected = {f"{name}.{SUFFIX[fmt]}" for name in RESULTS for fmt in FORMATS}
    assert {p.name for p in SNAPSHOTS.iterdir()} == expected


def test_warnings_are_cases_named_by_their_code():
    run_cases = [c for c in cases(failing_verdict()) if c.suite == "run"]
    assert [c.name for c in run_cases] == ["run_interrupted", "busy_host"]
    assert all(c.ok and c.severity == "warning" for c in run_cases)
    compare_cases = [c.name for c in cases(comparison()) if c.suite == "run"]
    assert compare_cases == ["machine_class_mismatch", "setup_mismatch"]


def test_findings_are_cases_named_by_their_code_and_an_error_fails():
    trend_cases = {c.name: c for c in cases(failing_verdict()) if c.suite == "trends" and c.details}
    assert set(trend_cases) == {"long_tail_spike", "memory_growth"}
    assert trend_cases["long_tail_spike"].ok and not trend_cases["memory_growth"].ok


def test_junit_counts_failures_and_skips():
    root = junit_format.document(passing_verdict()).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("5", "0", "1")
    root = junit_format.document(comparison()).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("5", "1", "0")


def test_the_json_of_a_result_reads_back_as_the_same_result():
    import msgspec

    for name, build in RESULTS.items():
        result = build()
        decoded = msgspec.json.decode(msgspec.json.encode(result), type=type(result))
        assert decoded == result, name
