"""``python -m tracecore_perf compare BASELINE CURRENT``: did the current run get slower,
flakier or heavier than the baseline, per scenario row (agent, task_ref)?

Latency per row: Mann-Whitney U (no normality assumed: episode latencies are skewed),
p-values adjusted across rows (Benjamini-Hochberg), and the effect as the ratio of medians
with a bootstrap confidence interval plus the Hodges-Lehmann shift. A row is faster or slower
only when the change is significant *and* its interval excludes 1 *and* it is larger than
the noise floor; a regression is a slower row whose ratio exceeds 1 + margin.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tracecore_perf.errors import UsageError
from tracecore_perf.loadrun import PublishedRun, locate
from tracecore_perf.models import EpisodeRow, Manifest, Summary
from tracecore_perf.verdict import Comparison, Estimate, OverallVerdict, RowComparison

METRICS = {
    "wall_clock_s": lambda r: r.wall_clock_s,
    "episode_s": lambda r: r.episode_s,
    "cpu_s": lambda r: r.cpu_user_s + r.cpu_sys_s,
}
INTERPRETER_FIELDS = ("python", "tracecore")
MIN_EPISODES = 5  # per row and side, successful episodes, before latency is compared
BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95


class Settings:
    def __init__(self, metric: str = "wall_clock_s", alpha: float = 0.01, noise: float = 0.05, margin: float = 0.10) -> None:
        self.metric, self.alpha, self.noise, self.margin = metric, alpha, noise, margin


def _key(row: EpisodeRow) -> tuple[str, str]:
    return row.agent, row.task_ref


def _group(rows: Sequence[EpisodeRow]) -> dict[tuple[str, str], list[EpisodeRow]]:
    groups: dict[tuple[str, str], list[EpisodeRow]] = defaultdict(list)
    for row in rows:
        groups[_key(row)].append(row)
    return groups


def _median_ratio(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(y, axis=axis) / np.median(x, axis=axis)


def _latency(base: np.ndarray, cur: np.ndarray, seed: int) -> tuple[Estimate, Estimate, float]:
    from scipy import stats  # imported when needed: it is most of the start-up time

    ratio = float(np.median(cur) / np.median(base))
    boot = stats.bootstrap(
        (base, cur),
        _median_ratio,
        vectorized=True,
        paired=False,
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    # Hodges-Lehmann: the median of every pairwise difference current - baseline
    shift = float(np.median(np.subtract.outer(cur, base)))
    p = float(stats.mannwhitneyu(cur, base, alternative="two-sided").pvalue)
    return (
        Estimate(
            value=round(ratio, 5),
            low=round(float(boot.confidence_interval.low), 5),
            high=round(float(boot.confidence_interval.high), 5),
        ),
        Estimate(value=round(shift, 6)),
        p,
    )


def _median_or_none(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(b - a, 6)


def _row(key: tuple[str, str], base: list[EpisodeRow], cur: list[EpisodeRow], settings: Settings, seed: int) -> RowComparison:
    from scipy import stats  # imported when needed: it is most of the start-up time

    value = METRICS[settings.metric]
    x = np.array([value(r) for r in base if r.success and value(r) is not None], dtype=float)
    y = np.array([value(r) for r in cur if r.success and value(r) is not None], dtype=float)
    comparable = len(x) >= MIN_EPISODES and len(y) >= MIN_EPISODES and np.median(x) > 0
    if comparable:
        ratio, shift, p = _latency(x, y, seed)
    else:
        ratio, shift, p = Estimate(value=None), Estimate(value=None), None
    ok_base, ok_cur = sum(r.success for r in base), sum(r.success for r in cur)
    success_p = float(stats.fisher_exact([[ok_cur, len(cur) - ok_cur], [ok_base, len(base) - ok_base]]).pvalue)
    return RowComparison(
        agent=key[0],
        task_ref=key[1],
        metric=settings.metric,
        baseline_n=len(x),
        current_n=len(y),
        baseline_median_s=round(float(np.median(x)), 6) if len(x) else None,
        current_median_s=round(float(np.median(y)), 6) if len(y) else None,
        ratio=ratio,
        shift_s=shift,
        p_value=p,
        p_adjusted=None,
        verdict="no change" if comparable else "not comparable",
        success_rate_baseline=round(ok_base / len(base), 4),
        success_rate_current=round(ok_cur / len(cur), 4),
        success_rate_delta=round(ok_cur / len(cur) - ok_base / len(base), 4),
        success_p_value=success_p,
        artifact_bytes_mean_delta=round(
            float(np.mean([r.artifact_bytes for r in cur]) - np.mean([r.artifact_bytes for r in base])), 1
        ),
        cpu_s_median_delta=_delta(
            _median_or_none([r.cpu_user_s + r.cpu_sys_s for r in base]),
            _median_or_none([r.cpu_user_s + r.cpu_sys_s for r in cur]),
        ),
        max_rss_bytes_median_delta=_delta(
            _median_or_none([r.max_rss_bytes for r in base]), _median_or_none([r.max_rss_bytes for r in cur])
        ),
        regression=False,
    )


def _decide(rows: list[RowComparison], settings: Settings) -> None:
    """Adjust p-values across rows, then call each row faster, slower or no change."""
    from scipy import stats  # imported when needed: it is most of the start-up time

    tested = [row for row in rows if row.p_value is not None]
    if not tested:
        return
    adjusted = stats.false_discovery_control([row.p_value for row in tested], method="bh")
    for row, p in zip(tested, adjusted, strict=True):
        row.p_adjusted = float(p)
        low, high, value = row.ratio.low, row.ratio.high, row.ratio.value
        assert value is not None and low is not None and high is not None
        significant = p < settings.alpha
        if significant and low > 1 and value >= 1 + settings.noise:
            row.verdict = "slower"
            row.regression = value > 1 + settings.margin
        elif significant and high < 1 and value <= 1 - settings.noise:
            row.verdict = "faster"


def overall_verdict(rows: list[RowComparison]) -> OverallVerdict:
    verdicts = {row.verdict for row in rows}
    if not rows or verdicts == {"not comparable"}:
        return "not comparable"
    if {"slower", "faster"} <= verdicts:
        return "mixed"
    if "slower" in verdicts:
        return "slower"
    if "faster" in verdicts:
        return "faster"
    return "no change"


def throughput(manifest: Manifest, summary: Summary) -> float | None:
    """Episodes per second. A run built in several attempts (a resume, or ``ab``'s chunks)
    publishes the last attempt's throughput; the whole run's is the attempts' sum."""
    if len(manifest.attempts) > 1:
        from datetime import datetime

        seconds = episodes = 0.0
        for attempt in manifest.attempts:
            if attempt.finished_at is None:
                return summary.throughput_eps
            seconds += (datetime.fromisoformat(attempt.finished_at) - datetime.fromisoformat(attempt.started_at)).total_seconds()
            episodes += attempt.episodes_run
        return round(episodes / seconds, 3) if seconds > 0 else None
    return summary.throughput_eps


def _rel(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or a == 0 else round(b / a - 1, 4)


def compare_runs(
    baseline: PublishedRun,
    current: PublishedRun,
    settings: Settings | None = None,
    *,
    fail_on_regression: bool = False,
    interpreter_ab: bool = False,
) -> Comparison:
    """``interpreter_ab``: the two runs are meant to differ in Python / TraceCore (``ab``), so
    only a difference in the machine itself is a mismatch."""
    settings = settings or Settings()
    base_rows, cur_rows = baseline.series(), current.series()
    base_m, cur_m = baseline.manifest(), current.manifest()
    base_s, cur_s = baseline.summary(), current.summary()
    base_g, cur_g = _group(base_rows), _group(cur_rows)
    shared = [key for key in base_g if key in cur_g]
    rows = [_row(key, base_g[key], cur_g[key], settings, seed=n) for n, key in enumerate(shared)]
    _decide(rows, settings)

    warnings = []
    differing = sorted(
        k
        for k in base_m.machine_class_fields
        if base_m.machine_class_fields.get(k) != cur_m.machine_class_fields.get(k)
        and not (interpreter_ab and k in INTERPRETER_FIELDS)  # what an A/B is meant to vary
    )
    match = not differing
    if not match:
        warnings.append(
            f"MACHINE CLASS MISMATCH: baseline {base_m.machine_class} vs current {cur_m.machine_class} "
            f"(differ in {', '.join(differing) or 'fingerprint'}); latency differences may be the machines, not the code"
        )
    for label, manifest in (("baseline", base_m), ("current", cur_m)):
        if not manifest.host.quiet:
            advice = "; wall-clock latency is noisy there, --metric cpu_s is not" if settings.metric == "wall_clock_s" else ""
            warnings.append(f"{label} run {manifest.stamp} started on a busy host ({manifest.host.quiet_reason}){advice}")
        if manifest.status == "interrupted":
            warnings.append(f"{label} run {manifest.stamp} was interrupted; it has fewer episodes than planned")
    if not shared:
        warnings.append("the runs share no scenario row (agent, task_ref): nothing to compare row by row")
    # Episodes sharing the cores with more or fewer others cost more or less, even in CPU time.
    setup = {"workers": "workers", "isolation": "isolation", "strict_spec": "strict spec"}
    differing_setup = [
        f"{label} {getattr(base_m, field)} vs {getattr(cur_m, field)}"
        for field, label in setup.items()
        if getattr(base_m, field) != getattr(cur_m, field)
    ]
    if differing_setup:
        warnings.append(f"the runs were set up differently ({'; '.join(differing_setup)}): part of any change is the set-up")

    base_tp, cur_tp = throughput(base_m, base_s), throughput(cur_m, cur_s)
    base_res, cur_res = base_s.resources, cur_s.resources
    resource_deltas = {
        "episode_max_rss_bytes": _delta(base_res.episode_max_rss_bytes, cur_res.episode_max_rss_bytes),
        "episode_cpu_s_per_episode": _delta(
            base_res.episode_cpu_s_total / base_s.episodes if base_s.episodes else None,
            cur_res.episode_cpu_s_total / cur_s.episodes if cur_s.episodes else None,
        ),
        "harness_peak_rss_bytes": _delta(base_res.harness_peak_rss_bytes, cur_res.harness_peak_rss_bytes),
        "harness_cpu_ms_per_episode": _delta(base_res.harness_cpu_ms_per_episode, cur_res.harness_cpu_ms_per_episode),
        "system_cpu_percent": _delta(base_s.system_samples.cpu_percent, cur_s.system_samples.cpu_percent),
    }
    regression = any(row.regression for row in rows)
    return Comparison(
        ok=not (fail_on_regression and regression),
        baseline=baseline.stamp,
        current=current.stamp,
        metric=settings.metric,
        alpha=settings.alpha,
        noise=settings.noise,
        margin=settings.margin,
        verdict=overall_verdict(rows),
        rows=rows,
        baseline_only=[f"{a} on {t}" for a, t in base_g if (a, t) not in cur_g],
        current_only=[f"{a} on {t}" for a, t in cur_g if (a, t) not in base_g],
        throughput_eps_baseline=base_tp,
        throughput_eps_current=cur_tp,
        throughput_delta=_rel(base_tp, cur_tp),
        success_rate_delta=(
            round(cur_s.success_count / cur_s.episodes - base_s.success_count / base_s.episodes, 4)
            if base_s.episodes and cur_s.episodes
            else None
        ),
        artifact_bytes_total_delta=cur_s.telemetry_verbosity.artifact_bytes_total
        - base_s.telemetry_verbosity.artifact_bytes_total,
        resource_deltas=resource_deltas,
        machine_class_match=match,
        warnings=warnings,
    )


def _fraction(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (or 0% and 100%), got {text}")
    return value


def _alpha(text: str) -> float:
    value = _fraction(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be above 0")
    return value


def add_comparison_flags(parser: argparse.ArgumentParser) -> None:
    """The flags ``compare`` and ``ab`` share."""
    from tracecore_perf.export import FORMATS

    parser.add_argument(
        "--metric", choices=sorted(METRICS), default="wall_clock_s", help="latency compared (default wall_clock_s)"
    )
    parser.add_argument("--alpha", type=_alpha, default=0.01, help="significance level after adjustment (default 0.01)")
    parser.add_argument("--noise", type=_fraction, default=0.05, help="changes smaller than this are no change (default 0.05)")
    parser.add_argument("--margin", type=_fraction, default=0.10, help="slower by more than this is a regression (default 0.10)")
    parser.add_argument("--fail-on", choices=["regression", "never"], default="never", help="exit 1 on a regression")
    parser.add_argument("--format", choices=sorted(FORMATS), default="text", help="output format (default text)")
    parser.add_argument("--junit-file", type=Path, metavar="PATH", help="where --format junit writes (default next to CURRENT)")


def settings_from(args: argparse.Namespace) -> Settings:
    if (
        args.format == "junit"
        and args.junit_file is not None
        and (args.junit_file.is_dir() or not args.junit_file.parent.is_dir())
    ):
        raise UsageError(f"--junit-file must be a file in an existing directory: {args.junit_file}")
    return Settings(metric=args.metric, alpha=args.alpha, noise=args.noise, margin=args.margin)


def report(comparison: Comparison, current: PublishedRun, args: argparse.Namespace) -> int:
    from tracecore_perf.export import emit

    if not comparison.machine_class_match:
        # loud even when stdout is a JSON or JUnit file
        print(f"tracecore-perf: WARNING: {comparison.warnings[0]}", file=sys.stderr)
    emit(args.format, comparison, current.output_dir / f"perf-compare-{current.stamp}.junit.xml", junit_file=args.junit_file)
    return 0 if comparison.ok else 1


def parser() -> argparse.ArgumentParser:
    from tracecore_perf.cli import _Parser

    p = _Parser(prog="tracecore-perf compare", description="Compare a run against a baseline, row by row, with statistics.")
    p.add_argument("baseline", help="stamp, run directory or perf-*-<stamp>.json of the baseline")
    p.add_argument("current", help="stamp, run directory or perf-*-<stamp>.json of the current run")
    p.add_argument("--search-dir", type=Path, default=Path("deliverables/perf"), help="where stamps are looked up")
    add_comparison_flags(p)
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    settings = settings_from(args)
    baseline = locate(args.baseline, args.search_dir)
    current = locate(args.current, args.search_dir)
    comparison = compare_runs(baseline, current, settings, fail_on_regression=args.fail_on == "regression")
    return report(comparison, current, args)
