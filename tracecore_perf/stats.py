"""Summary statistics of a sample, as every stage reports them (a leaf: the run's summary, the
report's tables and the history's figures all use the same percentiles)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable

from tracecore_perf.models import Distribution


def distribution(values: Iterable[float]) -> Distribution:
    """Mean, percentiles (the standard library's inclusive method, i.e. linear
    interpolation between order statistics) and max of a sample."""
    data = sorted(values)
    if not data:
        return Distribution(count=0, mean=None, p50=None, p90=None, p95=None, p99=None, max=None)
    cuts = statistics.quantiles(data, n=100, method="inclusive") if len(data) > 1 else [data[0]] * 99
    return Distribution(
        count=len(data),
        mean=round(statistics.fmean(data), 6),
        p50=round(cuts[49], 6),
        p90=round(cuts[89], 6),
        p95=round(cuts[94], 6),
        p99=round(cuts[98], 6),
        max=round(data[-1], 6),
    )


def median_interval(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """A distribution-free confidence interval of the median: the order statistics
    ``x(j)`` and ``x(n+1-j)`` with the largest ``j`` whose coverage, 1 - 2 P(B(n, 1/2) < j),
    is still at least ``confidence``. Exact, no resampling, the same on every call. None for
    samples too small to reach it (fewer than 6 at 95%)."""
    from scipy.stats import binom

    data = sorted(values)
    n = len(data)
    if n == 0 or 1 - 2 * binom.cdf(0, n, 0.5) < confidence:
        return None
    j = 1
    while 1 - 2 * binom.cdf(j, n, 0.5) >= confidence:  # x(j+1) .. x(n-j) still covers
        j += 1
    return data[j - 1], data[n - j]
