"""Series over runs and their change points.

Looked for top-down, as E-divisive means does (MongoDB's ``signal-processing-algorithms``,
which this replaced, and Apache Otava): ``ruptures`` places the best single split of a series
(binary segmentation with the least-absolute-deviation cost: the cut whose two medians fit
the runs best; one odd run does not drag it), scipy judges it, and a split that holds is
searched again on each side. It holds when a split as sharp as the series' sharpest (the
largest Student's t between the two sides of any place, MIN_SIZE runs a side) is unlikely with
the same runs in random order: a seeded permutation test (``permutations`` orders), so that
choosing the place is paid for. Where the runs are too few for any permutation test to reach
``pvalue`` (three each side: the most extreme split is two of the 20 ways to split six runs,
p = 0.1 whatever the step), the p-value is Student's t distribution's, Bonferroni-corrected
for every place the split could have been, when each side has T_MIN_SIZE runs: a 4% step in
instruction counts that repeat to 0.02% is then found with three runs each side. Nothing
statistical is written here. On top of the significance, a change smaller than
``min_change`` (relative change of the segment medians) is dropped and its neighbours are
merged, so a host's run-to-run noise is not reported as a change.

Each side of a change needs two runs: a regression can be found on the second run after it
when eight or more came before it, else on the third (and is named by the first). The
permutations are seeded, so the same history gives the same change points.

Instruction counts are not judged that way: they repeat to ~0.02% whatever the host does, so
one run is evidence. A count's change is a level shift (``_level_shifts``): a run more than
the metric's ``min_change`` (0.5%) away from the level before it (the median of the runs since
the last change), named, and found, from that first run after it.
"""

from __future__ import annotations

import math
import re
import statistics
import warnings
from collections import defaultdict

from tracecore_perf.errors import UsageError
from tracecore_perf.history.models import (
    METRICS,
    RUN_WIDE,
    Acceptance,
    ChangePoint,
    GroupFigures,
    History,
    HistoryVerdict,
    Point,
    RunRecord,
    Series,
    Settings,
)

MIN_SIZE = 2  # runs on each side of a change: Student's t needs two to see a spread
MIN_RUNS = 2 * MIN_SIZE
# Student's t distribution judges a split only with three runs on each side: on a side of two it
# rests on one degree of freedom of that side's spread, and a shared host's load over two runs in
# a row looks like a step to it; there, only a permutation test may find the split (with about
# eight runs on the other side), as with E-divisive
T_MIN_SIZE = 3


def check_metrics(names: list[str] | None) -> list[str]:
    """The metrics asked for (all when none), or UsageError naming an unknown one."""
    if not names:
        return list(METRICS)
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise UsageError(f"unknown metric {unknown[0]!r} (metrics: {', '.join(METRICS)})")
    return list(dict.fromkeys(names))


def _natural(text: str) -> list:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part]


def ordered(runs: list[RunRecord], order: str) -> list[RunRecord]:
    """Runs in time order, or by label (numbers inside labels compared as numbers, so 1.10
    comes after 1.9; runs without a label last, in time order)."""
    by_time = sorted(runs, key=lambda r: (r.generated_at, r.stamp))
    if order == "time":
        return by_time
    return sorted(by_time, key=lambda r: (r.label is None, _natural(r.label or "")))


def _is_slower(metric: str, ratio: float) -> bool:
    return ratio > 1 if METRICS[metric].worse == "higher" else ratio < 1


def _ratio(before: float, after: float) -> float | None:
    if before > 0:
        return after / before
    return 1.0 if after == before else None


def _segments(values: list[float], cuts: list[int]) -> list[tuple[float, float, float | None]]:
    bounds = [0, *cuts, len(values)]
    out = []
    for i, cut in enumerate(cuts):
        before = statistics.median(values[bounds[i] : cut])
        after = statistics.median(values[cut : bounds[i + 2]])
        out.append((before, after, _ratio(before, after)))
    return out


def min_change(metric: str, settings: Settings) -> float:
    """The smallest change reported on ``metric``: --min-change when given, else the metric's
    own (instruction counts), else the default."""
    own = METRICS[metric].min_change
    return settings.min_change if settings.min_change_given or own is None else own


def floors_text(metrics: list[str], settings: Settings) -> str:
    """``changes under 10% dropped`` (and each metric whose own floor differs)."""
    others = {m: min_change(m, settings) for m in metrics if min_change(m, settings) != settings.min_change}
    own = "".join(f", under {v:.1%} for {m}" for m, v in others.items())
    return f"changes under {settings.min_change:.0%}{own} dropped"


def method_text(settings: Settings) -> str:
    """How change points were looked for, in a line of ``show`` and the page."""
    return (
        f"splits placed by ruptures (l1 cost), kept at p <= {settings.pvalue:g} (the sharpest split's Student's t; "
        f"{settings.permutations} permutations, seeded, where the runs allow); instruction counts: a level shift "
        "past the metric's minimum change, from the first run after it"
    )


def _sharpest_split(series, axis: int = -1):
    """The largest |Student's t| between the two sides of any place ``series`` (its last axis;
    scipy passes a batch of orders) can be split, MIN_SIZE runs on each side at least."""
    import numpy as np
    from scipy import stats

    n = series.shape[-1]
    places = np.arange(MIN_SIZE, n - MIN_SIZE + 1)
    sides = [(series[..., :k], series[..., k:]) for k in places]
    mean = [np.array([pair[i].mean(axis=-1) for pair in sides]) for i in (0, 1)]
    std = [np.array([pair[i].std(axis=-1, ddof=1) for pair in sides]) for i in (0, 1)]
    count = places.reshape((-1,) + (1,) * (series.ndim - 1))
    t = stats.ttest_ind_from_stats(mean[0], std[0], count, mean[1], std[1], n - count).statistic
    return np.nanmax(np.abs(t), axis=0)


def _p_value(values: list[float], cut: int, settings: Settings) -> float:
    """How likely a split as sharp as this segment's sharpest is with the same runs in random
    order: a permutation test (``settings.permutations`` orders, seeded) where one can reach
    ``settings.pvalue`` (its smallest p is about two over the ways of choosing the runs before
    the cut). Where none can: Student's t distribution's p at ``cut``, Bonferroni-corrected for
    every place the cut could have been, when each side has T_MIN_SIZE runs; else no change."""
    import numpy as np
    from scipy import stats

    with warnings.catch_warnings():  # a constant side: scipy says so, and answers inf (nan: one level)
        warnings.simplefilter("ignore", RuntimeWarning)
        if 2 / min(math.comb(len(values), cut), settings.permutations + 1) <= settings.pvalue:
            p = stats.permutation_test(
                (np.asarray(values, dtype=float),),
                _sharpest_split,
                permutation_type="pairings",  # one sample: its order is permuted
                vectorized=True,
                n_resamples=settings.permutations,
                alternative="greater",
                rng=np.random.default_rng(settings.seed),
            ).pvalue
        elif min(cut, len(values) - cut) >= T_MIN_SIZE:
            places = len(values) - 2 * MIN_SIZE + 1
            p = places * stats.ttest_ind(values[:cut], values[cut:]).pvalue
        else:
            p = 1.0
    return 1.0 if math.isnan(p) else min(1.0, float(p))


def _split(values: list[float], settings: Settings) -> list[int]:
    """The significant cuts of ``values`` (indexes of the first value after each), searched
    top-down: ruptures' best single split, kept when significant, then each part alone."""
    if len(values) < 2 * MIN_SIZE or len(set(values)) == 1:  # one value throughout: nothing changed
        return []
    import numpy as np
    import ruptures

    search = ruptures.Binseg(model="l1", min_size=MIN_SIZE, jump=1).fit(np.asarray(values, dtype=float))
    cut = search.predict(n_bkps=1)[0]
    if _p_value(values, cut, settings) > settings.pvalue:
        return []
    return [*_split(values[:cut], settings), cut, *(cut + c for c in _split(values[cut:], settings))]


def _significant_cuts(values: list[float], settings: Settings, smallest: float) -> list[int]:
    cuts = _split(values, settings)
    # The magnitude guard: drop the smallest change below min_change, merge its neighbours, repeat.
    while cuts:
        sizes = [abs(math.log(r)) if r else math.inf for _, _, r in _segments(values, cuts)]
        weakest = min(range(len(cuts)), key=lambda i: sizes[i])
        if sizes[weakest] >= math.log1p(smallest) - 1e-12:
            break
        del cuts[weakest]
    return cuts


def _level_shifts(values: list[float], smallest: float) -> list[int]:
    """Where a deterministic series (instruction counts) moved: each run more than
    ``smallest`` (relative) away from the level before it, the median of the runs since the
    last change (or the first run), starts a new level. One run after a step finds it; runs
    that repeat within ``smallest`` never do."""
    cuts: list[int] = []
    start = 0
    for i in range(1, len(values)):
        ratio = _ratio(statistics.median(values[start:i]), values[i])
        if ratio is None or abs(math.log(ratio)) >= math.log1p(smallest) - 1e-12:
            cuts.append(i)
            start = i
    return cuts


def deterministic(metric: str) -> bool:
    """A series judged by level shifts (instruction counts) rather than by E-divisive."""
    return METRICS[metric].unit == "instructions"


def _coincidences(a: RunRecord, b: RunRecord) -> list[str]:
    """What else changed between the last run before a change and the first after it."""
    said = []
    if a.tracecore_version != b.tracecore_version:
        said.append(f"TraceCore {a.tracecore_version} -> {b.tracecore_version}")
    if a.python_version != b.python_version:
        said.append(f"Python {a.python_version} -> {b.python_version}")
    if a.machine_id != b.machine_id:
        said.append(f"machine {a.machine_id} -> {b.machine_id} ({a.cpu_model} -> {b.cpu_model})")
    for field in ("workers", "isolation", "warmup"):
        if getattr(a, field) != getattr(b, field):
            said.append(f"{field} {getattr(a, field)} -> {getattr(b, field)}")
    return said


def _series_change_points(series: Series, runs: dict[str, RunRecord], settings: Settings) -> None:
    known = [p for p in series.points if p.value is not None]
    needed = 2 if deterministic(series.metric) else MIN_RUNS
    if len(known) < needed:
        series.note = f"{len(known)} run(s) with a value; change points need at least {needed}"
        return
    values = [float(p.value) for p in known]  # type: ignore[arg-type]
    smallest = min_change(series.metric, settings)
    cuts = _level_shifts(values, smallest) if deterministic(series.metric) else _significant_cuts(values, settings, smallest)
    bounds = [0, *cuts, len(values)]
    for i, (cut, (before, after, ratio)) in enumerate(zip(cuts, _segments(values, cuts), strict=True)):
        first, last_before = runs[known[cut].stamp], runs[known[cut - 1].stamp]
        series.change_points.append(
            ChangePoint(
                agent=series.agent,
                task_ref=series.task_ref,
                metric=series.metric,
                machine_id=series.machine_id,
                stamp=first.stamp,
                index=cut,
                direction="slower" if ratio is None or _is_slower(series.metric, ratio) else "faster",
                before=before,
                after=after,
                ratio=round(ratio, 6) if ratio is not None else None,
                runs_before=cut - bounds[i],
                runs_after=bounds[i + 2] - cut,
                coincides_with=_coincidences(last_before, first),
            )
        )


def build_series(runs: list[RunRecord], groups: list[GroupFigures], metrics: list[str], settings: Settings) -> list[Series]:
    """Every series (metric x (agent, task_ref) x machine) with its change points."""
    order = ordered(runs, settings.order)
    by_stamp = {r.stamp: r for r in order}
    figures: dict[tuple[str, str], dict[str, GroupFigures]] = defaultdict(dict)
    for group in groups:
        figures[(group.agent, group.task_ref)][group.stamp] = group
    classes = [None] if settings.mix_machines else list(dict.fromkeys(r.machine_id for r in order))
    out = []
    for metric in metrics:
        keys = sorted(figures) if METRICS[metric].per_group else [(RUN_WIDE, RUN_WIDE)]
        for cls in classes:
            members = [r for r in order if cls is None or r.machine_id == cls]
            for agent, task_ref in keys:
                if METRICS[metric].per_group:
                    mine = figures[(agent, task_ref)]
                    points = [Point(stamp=r.stamp, value=getattr(mine[r.stamp], metric)) for r in members if r.stamp in mine]
                else:
                    points = [Point(stamp=r.stamp, value=getattr(r, metric)) for r in members]
                if not points:
                    continue
                series = Series(agent=agent, task_ref=task_ref, metric=metric, machine_id=cls, points=points)
                _series_change_points(series, by_stamp, settings)
                out.append(series)
    return out


def _mark_accepted(series: list[Series], order: list[RunRecord], acceptances: list[Acceptance]) -> list[Acceptance]:
    """Each change point at or before an accepted run (in the runs' order) gets the first such
    acceptance. Returns the acceptances in that order."""
    position = {r.stamp: i for i, r in enumerate(order)}
    accepted = sorted((a for a in acceptances if a.stamp in position), key=lambda a: position[a.stamp])
    for cp in (cp for s in series for cp in s.change_points):
        cp.accepted = next((a for a in accepted if position[cp.stamp] <= position[a.stamp]), None)
    return accepted


def history(
    database: str,
    runs: list[RunRecord],
    groups: list[GroupFigures],
    metrics: list[str],
    settings: Settings,
    acceptances: list[Acceptance] | None = None,
) -> History:
    series = build_series(runs, groups, metrics, settings)
    order = ordered(runs, settings.order)
    return History(
        database=database,
        settings=settings,
        metrics=metrics,
        runs=order,
        series=series,
        change_points=[cp for s in series for cp in s.change_points],
        acceptances=_mark_accepted(series, order, acceptances or []),
    )


def check(found: History) -> HistoryVerdict:
    """Is the newest run on the slower side of a change point? A series fails when its latest
    change point is slower and not accepted (``history accept``), the newest run is on its new
    level, and the newest run's own value is still beyond ``min_change`` of the level before (a
    fix in the newest run clears it)."""
    newest = found.runs[-1].stamp if found.runs else None
    regressions, others, checked, notes = [], [], 0, []
    for series in found.series:
        smallest = min_change(series.metric, found.settings)
        if not series.points or series.points[-1].stamp != newest:
            continue
        checked += 1
        if series.note:
            notes.append(f"{series.metric} of {series.agent} on {series.task_ref}: {series.note}")
        if not series.change_points:
            continue
        latest = series.change_points[-1]
        value = series.points[-1].value
        ratio = _ratio(latest.before, value) if value is not None else None
        still = ratio is None or (_is_slower(series.metric, ratio) and abs(math.log(ratio)) >= math.log1p(smallest) - 1e-12)
        if latest.direction == "slower" and still and latest.accepted is None:
            regressions.append(latest)
        else:
            others.append(latest)
    if newest is None:
        notes.append("the history holds no run")
    return HistoryVerdict(
        database=found.database,
        newest=newest,
        metrics=found.metrics,
        ok=not regressions,
        regressions=regressions,
        other_change_points=others,
        series_checked=checked,
        notes=notes,
    )
