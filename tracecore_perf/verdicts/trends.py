"""Trend checks: TraceCore's performance guide's review questions for larger runs, asked of the series and
the samples. Each detector returns zero or more named :class:`Finding`s with their evidence.

Every detector needs a minimum amount of data before it says anything (a finding on a
handful of episodes would be noise); they matter from a few hundred episodes, but the
minimums are low enough that a purpose-built small run shows each one. Each finding needs
both statistical evidence (a test at ``ALPHA`` or stricter) and a practical size (a ratio or
an absolute amount), so that a large healthy run does not trip on a tiny, real difference.

Every check ends in one of three states (:class:`TrendCheck`): a finding, clear (it had the
data it needs and saw nothing), or insufficient data (what it needs and what the run has), so a
short run is never shown as having passed a check it could not make.

Episode numbers in findings are the series' ``episode`` field (1-based).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from scipy import stats

from tracecore_perf.models import EpisodeRow, Sample
from tracecore_perf.published import PublishedRun
from tracecore_perf.verdicts.models import Finding, FindingCode, TrendCheck

CHECKS = tuple(FindingCode)  # in the order they are shown

ALPHA = 0.01
MIB = 2**20

# long-tail spikes: within one group (agent, task), far beyond its typical spread
SPIKE_MIN_ROW_EPISODES = 12
SPIKE_FACTOR = 3.0  # x the row median
SPIKE_MADS = 10.0  # robust standard deviations above the median
SPIKE_MIN_EXCESS_S = 0.5  # and at least this much slower than the median (scheduler jitter is not a spike)

# late drift: the last part of the run against the first
DRIFT_MIN_EPISODES = 30
DRIFT_MIN_RATIO = 1.5  # a busy host easily moves wall-clock medians by a quarter
DRIFT_MIN_RHO = 0.3

# failure clusters
CLUSTER_MIN_FAILURES = 3
CLUSTER_MIN_SHARE = 0.8
SEED_MODULI = range(2, 11)

# artifact growth
GROWTH_MIN_EPISODES = 20
GROWTH_MIN_RATIO = 1.2
GROWTH_MIN_RHO = 0.5

# memory growth (from the samples, after the first WARMUP share of the run's sampled time)
MEMORY_MIN_SAMPLES = 10
MEMORY_WARMUP = 0.2
MEMORY_MIN_RHO = 0.8
MEMORY_LABELS = {
    "harness_rss_bytes": "harness RSS",
    "workers_rss_bytes": "worker processes' RSS",
    "system_used_bytes": "system memory in use",
}
MEMORY_MIN_GROWTH = {"harness_rss_bytes": 32 * MIB, "workers_rss_bytes": 64 * MIB, "system_used_bytes": 256 * MIB}

# success rate against a baseline run
SUCCESS_MIN_DELTA = 0.05


def assess(run: PublishedRun, baseline: PublishedRun | None = None) -> tuple[list[Finding], list[TrendCheck]]:
    """The findings, and every check's state, for a published run (``baseline``: the run
    ``check --baseline`` names, for the success rate)."""
    rows = run.series()
    samples = run.samples() if run.paths["samples"].is_file() else []
    baseline_rows = baseline.series() if baseline is not None else None
    return assess_rows(rows, samples, baseline_rows)


def detect_rows(
    rows: Sequence[EpisodeRow], samples: Sequence[Sample] = (), baseline_rows: Sequence[EpisodeRow] | None = None
) -> list[Finding]:
    """Every trend check over rows and samples already in memory (the tests build them)."""
    return assess_rows(rows, samples, baseline_rows)[0]


class Requirement(NamedTuple):
    """What a check needs before it can say anything, and what the run has."""

    have: int
    needed: int
    unit: str
    clear: str  # what "clear" means for this check on this run


def requirements(
    rows: Sequence[EpisodeRow], samples: Sequence[Sample] = (), baseline_rows: Sequence[EpisodeRow] | None = None
) -> dict[FindingCode, Requirement]:
    """Each check's minimum of data against this run's (the same minimums the detectors use)."""
    timed = timed_alike(rows)
    sizes = [len(group) for group in _by_group(timed).values()]
    largest = max(sizes, default=0)
    unchecked = sum(size < SPIKE_MIN_ROW_EPISODES for size in sizes)
    spikes_clear = f"no spike in {len(timed)} {_episodes(rows, timed)}" + (
        f" ({unchecked} group(s) under {SPIKE_MIN_ROW_EPISODES} episodes not checked)" if unchecked else ""
    )
    failed = sum(not r.success for r in rows)
    warm = _warm_samples(samples)
    span = float(warm[-1].t_s - warm[0].t_s) if len(warm) > 1 else 0.0
    needs = {
        FindingCode.LONG_TAIL_SPIKE: Requirement(largest, SPIKE_MIN_ROW_EPISODES, "episodes in one scenario row", spikes_clear),
        FindingCode.LATE_LATENCY_DRIFT: Requirement(
            len(timed), DRIFT_MIN_EPISODES, _episodes(rows, timed), f"no upward drift over {len(timed)} {_episodes(rows, timed)}"
        ),
        FindingCode.ARTIFACT_GROWTH: Requirement(
            len(rows), GROWTH_MIN_EPISODES, "episodes", f"artifact bytes per episode steady over {len(rows)} episodes"
        ),
        FindingCode.MEMORY_GROWTH: Requirement(
            len(warm),
            MEMORY_MIN_SAMPLES,
            "resource samples after the warm-up",
            f"no runaway memory in {len(warm)} samples over {span:.1f} s",
        ),
    }
    if failed == 0:
        needs[FindingCode.FAILURE_CLUSTER] = Requirement(0, 0, "failed episodes", "no failed episode to cluster")
    elif failed == len(rows):
        needs[FindingCode.FAILURE_CLUSTER] = Requirement(0, 1, "successful episode to set the failures against", "")
    else:
        needs[FindingCode.FAILURE_CLUSTER] = Requirement(
            failed, CLUSTER_MIN_FAILURES, "failed episodes", f"{failed} failures spread over rows, agents, tasks and seeds"
        )
    if baseline_rows is not None:
        have = min(len(rows), len(baseline_rows))
        needs[FindingCode.SUCCESS_RATE_SHIFT] = Requirement(have, 1, "episodes in each run", "success rate as in the baseline")
    return needs


def assess_rows(
    rows: Sequence[EpisodeRow], samples: Sequence[Sample] = (), baseline_rows: Sequence[EpisodeRow] | None = None
) -> tuple[list[Finding], list[TrendCheck]]:
    """Run the six detectors over ``rows`` (sorted into run order), ``samples`` and, when
    given, a baseline run's rows; then each check's state: a finding, clear, or
    insufficient data against :func:`requirements`, in the order of ``CHECKS``."""
    rows = sorted(rows, key=lambda r: r.episode_index)
    timed = timed_alike(rows)
    findings = long_tail_spikes(timed) + late_latency_drift(timed) + failure_clusters(rows)
    findings += artifact_growth(rows) + memory_growth(samples)
    if baseline_rows is not None:
        findings += success_rate_shift(rows, baseline_rows)
    states = []
    for code, need in requirements(rows, samples, baseline_rows).items():
        mine = [f for f in findings if f.code == code]
        if mine:
            state, message = "finding", f"{len(mine)} finding(s)"
        elif need.have < need.needed:
            state, message = "insufficient data", f"needs at least {need.needed} {need.unit}, the run has {need.have}"
        else:
            state, message = "clear", need.clear
        states.append(TrendCheck(code=code, state=state, message=message, have=need.have, needed=need.needed, unit=need.unit))
    order = {code: i for i, code in enumerate(CHECKS)}
    states.sort(key=lambda c: order[c.code])
    return findings, states


def timed_alike(rows: Sequence[EpisodeRow]) -> Sequence[EpisodeRow]:
    """The rows whose times the time checks (spikes, drift) may set against each other: in an
    instruction run with episodes run only natively (past ``--counted-per-row``), those; its
    counted episodes ran under Valgrind, ~50 times slower, and would read as spikes of their own."""
    native = [row for row in rows if row.native_only]
    return native if native else rows


def _episodes(rows: Sequence[EpisodeRow], timed: Sequence[EpisodeRow]) -> str:
    return "episodes" if len(timed) == len(rows) else "episodes run natively"


def _group_key(row: EpisodeRow) -> str:
    return f"{row.agent} on {row.task_ref}"


def _by_group(rows: Sequence[EpisodeRow]) -> dict[str, list[EpisodeRow]]:
    groups: dict[str, list[EpisodeRow]] = defaultdict(list)
    for row in rows:
        groups[_group_key(row)].append(row)
    return groups


def _normalised(rows: Sequence[EpisodeRow], value: Callable[[EpisodeRow], float]) -> np.ndarray:
    """Each row's value over its group's median, so groups of different size mix."""
    medians = {key: float(np.median([value(r) for r in group])) for key, group in _by_group(rows).items()}
    return np.array([value(r) / medians[_group_key(r)] if medians[_group_key(r)] > 0 else np.nan for r in rows])


def _r(value: float, digits: int = 4) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


# --- long-tail spikes ------------------------------------------------------------------


def long_tail_spikes(rows: Sequence[EpisodeRow]) -> list[Finding]:
    """Did one scenario spike disproportionately? Per (agent, task) group of ``rows`` with at
    least ``SPIKE_MIN_ROW_EPISODES`` episodes, the episodes whose wall clock is over a cutoff:
    the largest of ``SPIKE_FACTOR`` x the group's median, the median plus ``SPIKE_MADS``
    robust standard deviations (MAD scaled as a normal's), and the median plus
    ``SPIKE_MIN_EXCESS_S`` seconds (a few hundred milliseconds of scheduler jitter is no
    spike). One finding per group with a spike, naming the worst."""
    findings = []
    for key, group in _by_group(rows).items():
        if len(group) < SPIKE_MIN_ROW_EPISODES:
            continue
        wall = np.array([r.wall_clock_s for r in group])
        median = float(np.median(wall))
        mad = float(stats.median_abs_deviation(wall, scale="normal"))
        cutoff = max(median * SPIKE_FACTOR, median + SPIKE_MADS * mad, median + SPIKE_MIN_EXCESS_S)
        spikes = [r for r in group if r.wall_clock_s > cutoff]
        if not spikes:
            continue
        worst = max(spikes, key=lambda r: r.wall_clock_s)
        findings.append(
            Finding(
                code=FindingCode.LONG_TAIL_SPIKE,
                severity="warning",
                explanation=(
                    f"{len(spikes)} of {len(group)} episodes of {key} took over {cutoff:.3g} s against a median of "
                    f"{median:.3g} s (worst: episode {worst.episode}, {worst.wall_clock_s:.3g} s)"
                ),
                evidence={
                    "scenario_row": key,
                    "episodes_in_row": len(group),
                    "median_s": _r(median, 6),
                    "mad_s": _r(mad, 6),
                    "cutoff_s": _r(cutoff, 6),
                    "spikes": [{"episode": r.episode, "wall_clock_s": r.wall_clock_s} for r in spikes[:50]],
                },
                episodes=[r.episode for r in spikes],
            )
        )
    return findings


# --- latency drifting upward late in the run -------------------------------------------


def late_latency_drift(rows: Sequence[EpisodeRow]) -> list[Finding]:
    """Is latency increasing late in the run? Over ``rows`` in run order (at least
    ``DRIFT_MIN_EPISODES``), each episode's wall clock over its group's median (so groups of
    different cost mix): the last third against the first. A finding needs all of: the last
    third larger (Mann-Whitney, one-sided, p < ``ALPHA``), a rank correlation with episode
    index (Spearman rho >= ``DRIFT_MIN_RHO``, p < ``ALPHA``), and medians at least
    ``DRIFT_MIN_RATIO`` apart (a busy host moves them by a quarter). Its evidence says whether
    CPU time rose too (more work) or only wall clock (waiting)."""
    if len(rows) < DRIFT_MIN_EPISODES:
        return []
    latency = _normalised(rows, lambda r: r.wall_clock_s)
    index = np.array([r.episode_index for r in rows])
    keep = np.isfinite(latency)
    latency, index = latency[keep], index[keep]
    if len(latency) < DRIFT_MIN_EPISODES or np.ptp(latency) == 0:
        return []  # constant latency: no drift (and no rank correlation to compute)
    third = len(latency) // 3
    first, last = latency[:third], latency[-third:]
    ratio = float(np.median(last) / np.median(first))
    mw = stats.mannwhitneyu(last, first, alternative="greater")
    rho = stats.spearmanr(index, latency)
    if not (mw.pvalue < ALPHA and rho.pvalue < ALPHA and rho.statistic >= DRIFT_MIN_RHO and ratio >= DRIFT_MIN_RATIO):
        return []
    first_s = float(np.median([r.wall_clock_s for r in rows[:third]]))
    last_s = float(np.median([r.wall_clock_s for r in rows[-third:]]))
    # CPU time rising too means the episodes do more work; wall-clock alone means they wait
    # (sleeps, I/O, or other load on the host)
    cpu_first = float(np.median([r.cpu_s for r in rows[:third]]))
    cpu_last = float(np.median([r.cpu_s for r in rows[-third:]]))
    slowest = sorted(rows[-third:], key=lambda r: r.wall_clock_s, reverse=True)[:10]
    return [
        Finding(
            code=FindingCode.LATE_LATENCY_DRIFT,
            severity="warning",
            explanation=(
                f"latency drifts upward: the last third of the run is x{ratio:.2f} the first third "
                f"(median {first_s:.3g} s -> {last_s:.3g} s; Spearman rho {rho.statistic:.2f} with episode index)"
            ),
            evidence={
                "episodes_per_part": third,
                "median_ratio_last_to_first": _r(ratio),
                "median_first_s": _r(first_s, 6),
                "median_last_s": _r(last_s, 6),
                "mann_whitney_p": float(mw.pvalue),
                "spearman_rho": _r(rho.statistic),
                "spearman_p": float(rho.pvalue),
                "cpu_s_median_ratio_last_to_first": _r(cpu_last / cpu_first) if cpu_first > 0 else None,
                "normalised_by": "each scenario row's median wall_clock_s",
            },
            episodes=sorted(r.episode for r in slowest),
        )
    ]


# --- failures clustered on one task, agent or seed pattern -----------------------------


def _fisher_greater(in_fail: int, in_total: int, out_fail: int, out_total: int) -> float:
    table = [[in_fail, in_total - in_fail], [out_fail, out_total - out_fail]]
    return float(stats.fisher_exact(table, alternative="greater").pvalue)


def failure_clusters(rows: Sequence[EpisodeRow]) -> list[Finding]:
    """Are failures clustered on a single task, agent or seed pattern? Needs at least
    ``CLUSTER_MIN_FAILURES`` failed episodes in ``rows`` and one success. For each dimension
    ((agent, task) group, agent, task_ref) the value with the most failures is a cluster when
    it holds at least ``CLUSTER_MIN_SHARE`` of all failures and fails more often than the rest
    (Fisher's exact test, one-sided, p < ``ALPHA``); the same failures found again under
    another dimension are one finding. Then seeds (:func:`_seed_pattern`)."""
    failed = [r for r in rows if not r.success]
    if len(failed) < CLUSTER_MIN_FAILURES or len(failed) == len(rows):
        return []
    findings = []
    seen: set[frozenset[int]] = set()
    for dimension in ("scenario row", "agent", "task_ref"):
        value_of: Callable[[EpisodeRow], str] = (
            _group_key if dimension == "scenario row" else lambda r, d=dimension: getattr(r, d)
        )
        totals: dict[str, int] = defaultdict(int)
        fails: dict[str, int] = defaultdict(int)
        for r in rows:
            totals[value_of(r)] += 1
            fails[value_of(r)] += not r.success
        if len(totals) < 2:
            continue
        value = max(fails, key=lambda v: fails[v])
        share = fails[value] / len(failed)
        p = _fisher_greater(fails[value], totals[value], len(failed) - fails[value], len(rows) - totals[value])
        episodes = frozenset(r.episode for r in failed if value_of(r) == value)
        if share < CLUSTER_MIN_SHARE or p >= ALPHA or episodes in seen:
            continue  # the agent and the task of a one-row cluster are the same finding
        seen.add(episodes)
        findings.append(
            Finding(
                code=FindingCode.FAILURE_CLUSTER,
                severity="warning",
                explanation=(
                    f"{fails[value]} of {len(failed)} failures are on {dimension} {value} "
                    f"({fails[value]}/{totals[value]} of its episodes fail, {len(failed) - fails[value]}/"
                    f"{len(rows) - totals[value]} elsewhere; Fisher p={p:.2g})"
                ),
                evidence={
                    "dimension": dimension,
                    "value": value,
                    "failures_there": fails[value],
                    "episodes_there": totals[value],
                    "failures_elsewhere": len(failed) - fails[value],
                    "episodes_elsewhere": len(rows) - totals[value],
                    "share_of_failures": _r(share),
                    "fisher_p": p,
                    "values": {v: {"episodes": totals[v], "failures": fails[v]} for v in sorted(totals)},
                },
                episodes=sorted(episodes),
            )
        )
    seed_finding = _seed_pattern(rows, failed)
    if seed_finding is not None:
        findings.append(seed_finding)
    return findings


def _seed_pattern(rows: Sequence[EpisodeRow], failed: Sequence[EpisodeRow]) -> Finding | None:
    """Failures on seeds of one residue class (seed % k == r), smallest k first; the p-value
    is Bonferroni-corrected for every (k, r) tried."""
    tests = sum(SEED_MODULI)
    for k in SEED_MODULI:
        for residue in range(k):
            inside = [r for r in rows if r.seed % k == residue]
            in_fail = sum(not r.success for r in inside)
            share = in_fail / len(failed)
            if share < CLUSTER_MIN_SHARE or len(inside) == len(rows):
                continue
            p = min(1.0, _fisher_greater(in_fail, len(inside), len(failed) - in_fail, len(rows) - len(inside)) * tests)
            if p >= ALPHA:
                continue
            return Finding(
                code=FindingCode.FAILURE_CLUSTER,
                severity="warning",
                explanation=(
                    f"{in_fail} of {len(failed)} failures are on seeds with seed % {k} == {residue} "
                    f"({in_fail}/{len(inside)} of those fail; corrected Fisher p={p:.2g})"
                ),
                evidence={
                    "dimension": "seed pattern",
                    "value": f"seed % {k} == {residue}",
                    "failures_there": in_fail,
                    "episodes_there": len(inside),
                    "failures_elsewhere": len(failed) - in_fail,
                    "episodes_elsewhere": len(rows) - len(inside),
                    "share_of_failures": _r(share),
                    "fisher_p_bonferroni": p,
                    "failed_seeds": sorted(r.seed for r in failed)[:100],
                },
                episodes=sorted(r.episode for r in failed if r.seed % k == residue),
            )
    return None


# --- artifact growth not linear in episode count ---------------------------------------


def artifact_growth(rows: Sequence[EpisodeRow]) -> list[Finding]:
    """Does artifact growth stay roughly linear with episode count? Over ``rows`` in run
    order (at least ``GROWTH_MIN_EPISODES``, some bytes), each episode's serialized artifact
    bytes over its group's median: a finding when the size per episode rises with episode
    index (Spearman rho >= ``GROWTH_MIN_RHO``, p < ``ALPHA``) and the last fifth's mean is
    at least ``GROWTH_MIN_RATIO`` x the first fifth's. The evidence puts it in the guide's
    terms: total bytes against a straight line through the first half's rate."""
    if len(rows) < GROWTH_MIN_EPISODES or sum(r.artifact_bytes for r in rows) == 0:
        return []
    size = _normalised(rows, lambda r: r.artifact_bytes)
    keep = np.isfinite(size)
    if keep.sum() < GROWTH_MIN_EPISODES or np.ptp(size[keep]) == 0:
        return []  # every episode of every row the same size: exactly linear
    index = np.array([r.episode_index for r in rows])[keep]
    size = size[keep]
    fifth = max(len(size) // 5, 1)
    ratio = float(np.mean(size[-fifth:]) / np.mean(size[:fifth]))
    rho = stats.spearmanr(index, size)
    if not (rho.pvalue < ALPHA and rho.statistic >= GROWTH_MIN_RHO and ratio >= GROWTH_MIN_RATIO):
        return []
    # the performance guide's question in its own terms: total bytes against episode count. A straight
    # line through the first half's rate predicts the total; the residual is what breaks it.
    count = np.arange(1, len(rows) + 1)
    total = np.cumsum([r.artifact_bytes for r in rows])
    fit = stats.linregress(count, total)
    half = len(rows) // 2
    rate = total[half - 1] / half
    residual = float(total[-1] - rate * len(rows))
    return [
        Finding(
            code=FindingCode.ARTIFACT_GROWTH,
            severity="warning",
            explanation=(
                f"artifact bytes per episode grow x{ratio:.2f} from the first to the last fifth of the run "
                f"(Spearman rho {rho.statistic:.2f}): total size is not linear in episode count, "
                f"{residual / (rate * len(rows)):+.0%} against the first half's {rate:,.0f} bytes per episode"
            ),
            evidence={
                "mean_ratio_last_to_first_fifth": _r(ratio),
                "spearman_rho": _r(rho.statistic),
                "spearman_p": float(rho.pvalue),
                "linear_fit": {
                    "bytes_per_episode": _r(fit.slope, 2),
                    "intercept_bytes": _r(fit.intercept, 2),
                    "r_squared": _r(fit.rvalue**2, 6),
                },
                "first_half_bytes_per_episode": _r(rate, 2),
                "total_bytes": int(total[-1]),
                "predicted_total_bytes": _r(rate * len(rows), 0),
                "residual_bytes": _r(residual, 0),
                "residual_share": _r(residual / (rate * len(rows))),
                "bytes_first_episode": rows[0].artifact_bytes,
                "bytes_last_episode": rows[-1].artifact_bytes,
                "normalised_by": "each scenario row's median artifact_bytes",
            },
            episodes=sorted(r.episode for r in sorted(rows, key=lambda r: r.artifact_bytes, reverse=True)[:10]),
        )
    ]


# --- memory growing without bound ------------------------------------------------------


def _timeline(samples: Sequence[Sample]) -> np.ndarray:
    """Sample times on one clock: a resumed run's attempts each start at 0."""
    times, offset, last = [], 0.0, -math.inf
    for s in samples:
        if s.t_s + offset < last:
            offset = last
        last = s.t_s + offset
        times.append(last)
    return np.array(times)


def _warmup_start(t: np.ndarray) -> int:
    """Index of the first sample after the warm-up: the first MEMORY_WARMUP of the sampled
    time (by time, not by count: short runs are sampled more densely at the start)."""
    if len(t) == 0:
        return 0
    return int(np.searchsorted(t, t[0] + MEMORY_WARMUP * (t[-1] - t[0]), side="left"))


def _warm_samples(samples: Sequence[Sample]) -> Sequence[Sample]:
    return samples[_warmup_start(_timeline(samples)) :]


def memory_growth(samples: Sequence[Sample]) -> list[Finding]:
    """Do memory samples show runaway growth? For each of the harness's RSS, the worker
    processes' RSS and the system memory in use, over the ``samples`` after the warm-up (the
    first ``MEMORY_WARMUP`` of the sampled time; at least ``MEMORY_MIN_SAMPLES``): a finding
    when the Theil-Sen slope's 95% interval is above zero, the series rises steadily with time
    (Spearman rho >= ``MEMORY_MIN_RHO``, p < ``ALPHA``) and the growth over the span is at
    least that series' ``MEMORY_MIN_GROWTH`` bytes (a plateau after a climb is no finding)."""
    if len(samples) < MEMORY_MIN_SAMPLES:
        return []
    t = _timeline(samples)
    series = {
        "harness_rss_bytes": np.array([s.harness_rss_bytes for s in samples], dtype=float),
        "workers_rss_bytes": np.array([s.workers_rss_bytes for s in samples], dtype=float),
        "system_used_bytes": np.array([s.memory_total_bytes - s.memory_available_bytes for s in samples], dtype=float),
    }
    start = _warmup_start(t)
    findings = []
    for name, values in series.items():
        x, y = t[start:], values[start:]
        if len(y) < MEMORY_MIN_SAMPLES or np.ptp(y) == 0 or np.ptp(x) == 0:
            continue
        slope, intercept, low, high = stats.theilslopes(y, x, alpha=0.95)
        rho = stats.spearmanr(x, y)
        growth = slope * (x[-1] - x[0])
        if not (low > 0 and rho.statistic >= MEMORY_MIN_RHO and rho.pvalue < ALPHA and growth >= MEMORY_MIN_GROWTH[name]):
            continue
        findings.append(
            Finding(
                code=FindingCode.MEMORY_GROWTH,
                severity="warning",
                explanation=(
                    f"{MEMORY_LABELS[name]} grows steadily: {growth / MIB:+.0f} MiB over "
                    f"{x[-1] - x[0]:.1f} s ({slope / MIB:.1f} MiB/s, Spearman rho {rho.statistic:.2f}) with no plateau"
                ),
                evidence={
                    "series": name,
                    "samples": len(y),
                    "warmup_samples_skipped": start,
                    "slope_bytes_per_s": _r(slope, 1),
                    "slope_ci95_bytes_per_s": [_r(low, 1), _r(high, 1)],
                    "growth_bytes": _r(growth, 0),
                    "first_bytes": int(y[0]),
                    "last_bytes": int(y[-1]),
                    "spearman_rho": _r(rho.statistic),
                    "min_growth_bytes": MEMORY_MIN_GROWTH[name],
                },
            )
        )
    return findings


# --- success rate against a baseline run -----------------------------------------------


def _rate_finding(scope: str, current: Sequence[EpisodeRow], baseline: Sequence[EpisodeRow]) -> Finding | None:
    if not current or not baseline:
        return None
    ok_now, ok_then = sum(r.success for r in current), sum(r.success for r in baseline)
    rate_now, rate_then = ok_now / len(current), ok_then / len(baseline)
    delta = rate_now - rate_then
    table = [[ok_now, len(current) - ok_now], [ok_then, len(baseline) - ok_then]]
    p = float(stats.fisher_exact(table).pvalue)
    if p >= ALPHA or abs(delta) < SUCCESS_MIN_DELTA:
        return None
    return Finding(
        code=FindingCode.SUCCESS_RATE_SHIFT,
        severity="warning" if delta < 0 else "info",
        explanation=(
            f"success rate of {scope} {'fell' if delta < 0 else 'rose'} from {rate_then:.1%} to {rate_now:.1%} "
            f"against the baseline ({delta * 100:+.1f} points, Fisher p={p:.2g})"
        ),
        evidence={
            "scope": scope,
            "reference_success": ok_then,
            "reference_episodes": len(baseline),  # published key names: "reference" is the baseline
            "current_success": ok_now,
            "current_episodes": len(current),
            "delta": _r(delta),
            "fisher_p": p,
        },
        episodes=[r.episode for r in current if not r.success][:200],
    )


def success_rate_shift(rows: Sequence[EpisodeRow], baseline_rows: Sequence[EpisodeRow]) -> list[Finding]:
    """Did the success rate move against a baseline run (``check --baseline``)? The whole
    run's rate against the baseline's, then each (agent, task) group both runs have: a
    finding when the two rates differ (Fisher's exact test, two-sided, p < ``ALPHA``) by at
    least ``SUCCESS_MIN_DELTA`` (five points); a fall is a warning, a rise information."""
    overall = _rate_finding("the run", rows, baseline_rows)
    findings = [overall] if overall else []
    now, then = _by_group(rows), _by_group(baseline_rows)
    shared = sorted(set(now) & set(then))
    if len(shared) > 1 or len(now) > 1:
        for key in shared:
            finding = _rate_finding(key, now[key], then[key])
            if finding is not None:
                findings.append(finding)
    return findings
