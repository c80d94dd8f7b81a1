"""The typed results of the verdict stages (check, trends, compare), shared by the stages
that produce them and the exporters and report that render them.

``check.py`` re-exports the check types; this module exists so that trends, compare and
the exporters can import them without importing each other.
"""

from __future__ import annotations

import sys
from enum import Enum
from typing import Any, Literal

import msgspec

Severity = Literal["info", "warning", "error"]
TrendState = Literal["finding", "clear", "insufficient data"]
RowVerdict = Literal["faster", "slower", "no change", "not comparable"]
OverallVerdict = Literal["faster", "slower", "mixed", "no change", "not comparable"]


if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # Python 3.10: what StrEnum is, a str whose str() and format() are its value

    class StrEnum(str, Enum):
        def __str__(self) -> str:
            return str.__str__(self)

        def __format__(self, spec: str) -> str:
            return str.__format__(self, spec)


class FindingCode(StrEnum):
    """What a finding is about: one code per trend check (``trends.CHECKS``)."""

    LONG_TAIL_SPIKE = "long_tail_spike"
    LATE_LATENCY_DRIFT = "late_latency_drift"
    FAILURE_CLUSTER = "failure_cluster"
    ARTIFACT_GROWTH = "artifact_growth"
    MEMORY_GROWTH = "memory_growth"
    SUCCESS_RATE_SHIFT = "success_rate_shift"


class WarningCode(StrEnum):
    """What a warning of ``check`` or ``compare`` is about. Consumers match on these, never
    on the text (which is for people and may change)."""

    RUN_INTERRUPTED = "run_interrupted"  # a run has fewer episodes than planned
    BUSY_HOST = "busy_host"  # a run started on a busy host: latency is noisy
    MACHINE_CLASS_MISMATCH = "machine_class_mismatch"  # runs (or run and baseline) from different machines (hardware)
    SETUP_MISMATCH = "setup_mismatch"  # compared anyway (--allow-setup-mismatch)
    NO_SHARED_ROWS = "no_shared_rows"  # the runs share no group (agent, task_ref)
    RUNTIME_MISMATCH = "runtime_mismatch"  # runs on another Python build or TraceCore (or Valgrind, counting)
    TIME_UNDER_VALGRIND = "time_under_valgrind"  # time compared between two instruction runs: inflated
    NO_TRACECORE_METRICS = "no_tracecore_metrics"  # the run's TraceCore (< 1.0.0) has no metrics pipeline
    # the episode interpreters had different things installed, or installed differently
    ENVIRONMENT_MISMATCH = "environment_mismatch"
    TAINTED_RUN = "tainted_run"  # a run whose evidence was tampered with, compared anyway (--allow-tainted)
    # counted episodes whose native twin failed: the kernel's work is judged without them
    NATIVE_TWINS_FAILED = "native_twins_failed"


LOUD_WARNINGS = frozenset(
    {
        WarningCode.MACHINE_CLASS_MISMATCH,
        WarningCode.SETUP_MISMATCH,
        WarningCode.RUNTIME_MISMATCH,
        WarningCode.ENVIRONMENT_MISMATCH,
        WarningCode.TAINTED_RUN,
        WarningCode.NATIVE_TWINS_FAILED,
    }
)
"""Warnings said on stderr too, even when stdout is a JSON or JUnit file."""


class Notice(msgspec.Struct, kw_only=True):
    """One warning: its code, and the text for people."""

    code: WarningCode
    message: str


class ThresholdResult(msgspec.Struct, kw_only=True):
    """One hard threshold of TraceCore's performance guide (or an override) against the run's figure."""

    name: str
    limit: Any
    actual: Any
    ok: bool
    message: str


class Finding(msgspec.Struct, kw_only=True):
    """A trend the run shows: what (``code``), how sure (evidence), how bad, and which
    episodes. ``name`` is the code's text, kept for readers of the JSON from before codes."""

    code: FindingCode
    severity: Severity
    explanation: str
    evidence: dict[str, Any] = {}
    episodes: list[int] = []
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.code.value


class TrendCheck(msgspec.Struct, kw_only=True):
    """One trend check's outcome: a finding, clear (it looked and saw nothing), or
    insufficient data (it could not look: ``needed`` of ``unit``, the run has ``have``)."""

    code: FindingCode
    state: TrendState
    message: str
    have: int | None = None
    needed: int | None = None
    unit: str | None = None
    name: str = ""  # the code's text, as for Finding

    def __post_init__(self) -> None:
        self.name = self.code.value


class Verdict(msgspec.Struct, kw_only=True):
    """``check``'s answer: ``ok`` is false when a threshold breaks or a finding is an error."""

    ok: bool
    stamp: str
    thresholds: list[ThresholdResult]
    findings: list[Finding]
    notices: list[Notice] = []  # the warnings, typed
    trend_checks: list[str] = []  # the trend checks that ran (none with --no-trends)
    trends: list[TrendCheck] = []  # each of them: finding, clear or insufficient data
    warnings: list[str] = []  # the notices' text, kept for readers of the JSON from before codes

    def __post_init__(self) -> None:
        self.warnings = [notice.message for notice in self.notices]


class Estimate(msgspec.Struct, kw_only=True):
    """A point estimate with its confidence interval."""

    value: float | None
    low: float | None = None
    high: float | None = None
    confidence: float = 0.95


class KernelChange(msgspec.Struct, kw_only=True):
    """Instruction comparisons: what the kernel did for one row's episodes, measured on their
    native twins (system time, minor page faults), which an instruction count cannot see.
    ``regression``: more by past the metric's margin, for a metric that gates (faults: the
    kernel's count of its own work; system time is a clock, shown but never failing alone)."""

    metric: Literal["native_minor_faults", "native_sys_s"]
    baseline_median: float
    current_median: float
    ratio: Estimate
    p_value: float | None
    verdict: Literal["more", "less", "no change"]
    regression: bool = False


class GroupComparison(msgspec.Struct, kw_only=True):
    """One group, the episodes of one (agent, task_ref), in the baseline against the current run."""

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
    # instruction counts (both runs made with --instructions): each side's median per
    # episode, and whether the ratio paired episodes by seed (metric "instructions")
    baseline_median_instructions: float | None = None
    current_median_instructions: float | None = None
    paired: bool | None = None
    # instruction counts: the kernel's work for the same episodes, from their native twins,
    # where both runs have them (a change there is flagged even when the count did not move)
    kernel: list[KernelChange] = msgspec.field(default_factory=list)


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
    rows: list[GroupComparison]
    baseline_only: list[str]
    current_only: list[str]
    throughput_eps_baseline: float | None
    throughput_eps_current: float | None
    throughput_delta: float | None  # relative, current / baseline - 1
    success_rate_delta: float | None
    artifact_bytes_total_delta: int | None
    resource_deltas: dict[str, float | None]
    machine_class_match: bool  # both runs on the same machine (the same machine id)
    machine_ids: list[str] = []  # the baseline's and the current run's machine id
    drift: float | None = None  # the between-run drift floor used
    setup_match: bool = True
    setup_differences: list[str] = []
    notices: list[Notice] = []  # the warnings, typed
    warnings: list[str] = []  # the notices' text, kept for readers of the JSON from before codes

    def __post_init__(self) -> None:
        self.warnings = [notice.message for notice in self.notices]


# --- how a figure is said, the same in every output ----------------------------------


def ratio_text(value: float | None, low: float | None, high: float | None, digits: int = 3) -> str:
    """A ratio and its interval: ``x1.052 [1.031, 1.074]``."""
    if value is None:
        return "ratio n/a"
    if low is None or high is None:
        return f"x{value:.{digits}f}"
    return f"x{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def p_text(value: float | None) -> str:
    """A p-value; one too small for a float (instruction counts a few % apart) is said so."""
    if value is None:
        return "n/a"
    return "<1e-300" if value == 0 else f"{value:.2g}"


def kernel_text(k: KernelChange) -> str:
    """One kernel figure of a row: its medians, ratio and verdict (``more`` past its noise floor)."""
    if k.metric == "native_sys_s":
        medians = f"system time {k.baseline_median * 1000:.2f} -> {k.current_median * 1000:.2f} ms"
    else:
        medians = f"minor faults {k.baseline_median:,.0f} -> {k.current_median:,.0f}"
    mark = "REGRESSION " if k.regression else ""
    return f"{medians}, {ratio_text(k.ratio.value, k.ratio.low, k.ratio.high)}, p={p_text(k.p_value)}: {mark}{k.verdict}"
