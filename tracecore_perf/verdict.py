"""The typed results of the verdict stages (check, trends, compare), shared by the stages
that produce them and the exporters and report that render them.

``check.py`` re-exports the check types; this module exists so that trends, compare and
the exporters can import them without importing each other.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Severity = Literal["info", "warning", "error"]
RowVerdict = Literal["faster", "slower", "no change", "not comparable"]
OverallVerdict = Literal["faster", "slower", "mixed", "no change", "not comparable"]


class ThresholdResult(msgspec.Struct, kw_only=True):
    """One hard threshold of the seed guide (or an override) against the run's figure."""

    name: str
    limit: Any
    actual: Any
    ok: bool
    message: str


class Finding(msgspec.Struct, kw_only=True):
    """A trend the run shows: what, how sure (evidence), how bad, and which episodes."""

    name: str
    severity: Severity
    explanation: str
    evidence: dict[str, Any] = {}
    episodes: list[int] = []


class Verdict(msgspec.Struct, kw_only=True):
    """``check``'s answer: ``ok`` is false when a threshold breaks or a finding is an error."""

    ok: bool
    stamp: str
    thresholds: list[ThresholdResult]
    findings: list[Finding]
    warnings: list[str] = []
    trend_checks: list[str] = []  # the trend checks that ran (none with --no-trends)


class Estimate(msgspec.Struct, kw_only=True):
    """A point estimate with its confidence interval."""

    value: float | None
    low: float | None = None
    high: float | None = None
    confidence: float = 0.95


class RowComparison(msgspec.Struct, kw_only=True):
    """One scenario row (agent, task_ref) in the baseline against the current run."""

    agent: str
    task_ref: str
    metric: str
    baseline_n: int
    current_n: int
    baseline_median_s: float | None
    current_median_s: float | None
    ratio: Estimate  # current median / baseline median, bootstrap CI
    shift_s: Estimate  # Hodges-Lehmann shift (current - baseline), seconds
    p_value: float | None  # Mann-Whitney U, two-sided
    p_adjusted: float | None  # Benjamini-Hochberg across rows
    verdict: RowVerdict
    success_rate_baseline: float | None
    success_rate_current: float | None
    success_rate_delta: float | None
    success_p_value: float | None  # Fisher's exact test
    artifact_bytes_mean_delta: float | None
    cpu_s_median_delta: float | None
    max_rss_bytes_median_delta: float | None
    regression: bool  # significantly slower by more than the margin


class Comparison(msgspec.Struct, kw_only=True):
    """``compare``'s answer."""

    ok: bool
    baseline: str
    current: str
    metric: str
    alpha: float
    noise: float
    margin: float
    verdict: OverallVerdict
    rows: list[RowComparison]
    baseline_only: list[str]
    current_only: list[str]
    throughput_eps_baseline: float | None
    throughput_eps_current: float | None
    throughput_delta: float | None  # relative, current / baseline - 1
    success_rate_delta: float | None
    artifact_bytes_total_delta: int | None
    resource_deltas: dict[str, float | None]
    machine_class_match: bool
    warnings: list[str] = []
    findings: list[Finding] = []
