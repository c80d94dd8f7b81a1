"""The typed results of the verdict stages (check, trends, compare), shared by the stages
that produce them and the exporters and report that render them.

``check.py`` re-exports the check types; this module exists so that trends, compare and
the exporters can import them without importing each other.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Severity = Literal["info", "warning", "error"]
TrendState = Literal["finding", "clear", "insufficient data"]
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


class TrendCheck(msgspec.Struct, kw_only=True):
    """One trend check's outcome: a finding, clear (it looked and saw nothing), or
    insufficient data (it could not look: ``needed`` of ``unit``, the run has ``have``)."""

    name: str
    state: TrendState
    message: str
    have: int | None = None
    needed: int | None = None
    unit: str | None = None


class Verdict(msgspec.Struct, kw_only=True):
    """``check``'s answer: ``ok`` is false when a threshold breaks or a finding is an error."""

    ok: bool
    stamp: str
    thresholds: list[ThresholdResult]
    findings: list[Finding]
    warnings: list[str] = []
    trend_checks: list[str] = []  # the trend checks that ran (none with --no-trends)
    trends: list[TrendCheck] = []  # each of them: finding, clear or insufficient data


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
    ratio: Estimate  # current median / baseline median; interval from sampling and drift
    shift_s: Estimate  # Hodges-Lehmann shift (current - baseline), seconds
    p_value: float | None  # two-sided z-test on the log ratio, sampling and between-run drift
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
    # what the interval and p-value are made of (log scale): the standard error of the log
    # ratio, each side's bootstrap standard error of its log median, and the drift each run
    # showed within itself (blocks in time; None when too short for blocks); the floor is
    # Comparison.drift. p_value_episodes: Mann-Whitney U on the episodes alone, drift ignored.
    se_log_ratio: float | None = None
    sampling_se: list[float | None] | None = None
    drift_within: list[float | None] | None = None
    blocks: list[int] | None = None
    p_value_episodes: float | None = None


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
    drift: float | None = None  # the between-run drift floor used
    setup_match: bool = True
    setup_differences: list[str] = []
    warnings: list[str] = []
    findings: list[Finding] = []
