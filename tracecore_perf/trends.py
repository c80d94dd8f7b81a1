"""Trend checks: findings drawn from a run's series and samples (work in progress)."""

from __future__ import annotations

from tracecore_perf.loadrun import PublishedRun
from tracecore_perf.verdict import Finding

CHECKS = ("long_tail_spike", "late_latency_drift", "failure_cluster", "artifact_growth", "memory_growth", "success_rate_shift")


def detect(run: PublishedRun, reference: PublishedRun | None = None) -> list[Finding]:
    return []
