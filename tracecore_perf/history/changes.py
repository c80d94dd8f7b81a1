"""Series over runs and their change points.

Change points come from E-divisive means (Matteson and James, 2014) as MongoDB's
``signal-processing-algorithms`` implements it (the algorithm behind Apache Otava, formerly
Hunter): it splits a series where the distributions on either side differ most, keeps a split
only when a permutation test finds it significant (``pvalue``), and recurses into the parts.
Nothing statistical is written here. On top of the library's significance, a change smaller
than ``min_change`` (relative change of the segment medians) is dropped and its neighbours are
merged, so a host's run-to-run noise is not reported as a change.

E-divisive needs at least two runs on each side of a change: a regression is found on the
second run after it (and named by the first). The permutations are seeded, so the same
history gives the same change points.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import defaultdict

from tracecore_perf.errors import UsageError
from tracecore_perf.history.models import (
    METRICS,
    RUN_WIDE,
    ChangePoint,
    GroupFigures,
    History,
    HistoryVerdict,
    Point,
    RunRecord,
    Series,
    Settings,
)

MIN_RUNS = 4  # two on each side of a change: fewer and E-divisive cannot place one


def _library():
    try:
        from signal_processing_algorithms.determinism import deterministic_numpy_random
        from signal_processing_algorithms.energy_statistics.energy_statistics import e_divisive
    except ImportError as exc:
        raise UsageError(
            f"history's change points need the signal-processing-algorithms package (E-divisive means), which is not "
            f"installed here ({exc}); it ships for CPython 3.11: pip install 'signal-processing-algorithms>=2.1.6,<3'"
        ) from None
    return e_divisive, deterministic_numpy_random


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


def _significant_cuts(values: list[float], settings: Settings, smallest: float) -> list[int]:
    e_divisive, deterministic = _library()
    with deterministic(settings.seed):
        cuts = sorted(int(c) for c in e_divisive(values, pvalue=settings.pvalue, permutations=settings.permutations))
    # The magnitude guard: drop the smallest change below min_change, merge its neighbours, repeat.
    while cuts:
        sizes = [abs(math.log(r)) if r else math.inf for _, _, r in _segments(values, cuts)]
        weakest = min(range(len(cuts)), key=lambda i: sizes[i])
        if sizes[weakest] >= math.log1p(smallest) - 1e-12:
            break
        del cuts[weakest]
    return cuts


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
    if len(known) < MIN_RUNS:
        series.note = f"{len(known)} run(s) with a value; change points need at least {MIN_RUNS}"
        return
    values = [float(p.value) for p in known]  # type: ignore[arg-type]
    cuts = _significant_cuts(values, settings, min_change(series.metric, settings))
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


def build_series(runs: list[RunRecord], rows: list[GroupFigures], metrics: list[str], settings: Settings) -> list[Series]:
    """Every series (metric x (agent, task_ref) x machine) with its change points."""
    order = ordered(runs, settings.order)
    by_stamp = {r.stamp: r for r in order}
    figures: dict[tuple[str, str], dict[str, GroupFigures]] = defaultdict(dict)
    for row in rows:
        figures[(row.agent, row.task_ref)][row.stamp] = row
    classes = [None] if settings.mix_machines else list(dict.fromkeys(r.machine_id for r in order))
    out = []
    for metric in metrics:
        keys = sorted(figures) if METRICS[metric].per_row else [(RUN_WIDE, RUN_WIDE)]
        for cls in classes:
            members = [r for r in order if cls is None or r.machine_id == cls]
            for agent, task_ref in keys:
                if METRICS[metric].per_row:
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


def history(database: str, runs: list[RunRecord], rows: list[GroupFigures], metrics: list[str], settings: Settings) -> History:
    series = build_series(runs, rows, metrics, settings)
    return History(
        database=database,
        settings=settings,
        metrics=metrics,
        runs=ordered(runs, settings.order),
        series=series,
        change_points=[cp for s in series for cp in s.change_points],
    )


def check(found: History) -> HistoryVerdict:
    """Is the newest run on the slower side of a change point? A series fails when its latest
    change point is slower, the newest run is on its new level, and the newest run's own value
    is still beyond ``min_change`` of the level before (a fix in the newest run clears it)."""
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
        if latest.direction == "slower" and still:
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
