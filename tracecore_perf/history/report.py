"""``history report``: one self-contained HTML page of the history, a chart per (agent, task_ref)
across runs with its change points marked, each run's stamp and label, and a link to a run's
own report where one sits next to its artifacts.

The run report's rules and helpers are reused, not copied: the same Jinja environment (its
autoescaping and filters, the template beside ``report.html.j2``), the same matplotlib style
and deterministic encoding (``report/charts.py``), charts embedded as PNG data URIs, no script
and a Content-Security-Policy that forbids every fetch.
"""

from __future__ import annotations

import base64
import os
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

import msgspec

from tracecore_perf import __version__
from tracecore_perf.files import write_atomic
from tracecore_perf.history.changes import floors_text, method_text
from tracecore_perf.history.export import accepted_text, describe, value_text, where
from tracecore_perf.history.models import METRICS, RUN_WIDE, ChangePoint, History, Series

DEFAULT_METRICS = ["cpu_s", "wall_clock_s", "throughput_eps", "harness_rss_bytes", "workers_rss_bytes"]
_SLOWER, _FASTER, _LINE = "#c0392b", "#1e7b34", "#2c7fb8"


class RunLine(msgspec.Struct, kw_only=True):
    stamp: str
    label: str | None
    generated_at: str
    episodes: int
    workers: int
    isolation: str
    tracecore_version: str
    python_version: str
    machine_id: str
    report_href: str | None  # relative to the page, when the run's own report sits beside its artifacts


class ChangeLine(msgspec.Struct, kw_only=True):
    where: str
    metric: str
    stamp: str
    direction: str
    before: str
    after: str
    ratio: str
    coincides_with: list[str]
    text: str
    charted: bool  # its metric has a chart on the page
    accepted: str | None = None  # history accept: with which run, and why


class HistoryChart(msgspec.Struct, kw_only=True):
    title: str
    caption: str
    data_uri: str


class HistoryPage(msgspec.Struct, kw_only=True):
    database: str
    generated_at: str
    harness_version: str
    settings_text: str
    metrics_text: str  # which metrics were looked at for change points, and which are charted
    runs: list[RunLine]
    change_points: list[ChangeLine]
    charts: list[HistoryChart]


def _report_href(source_dir: str, stamp: str, page_dir: Path) -> str | None:
    own = Path(source_dir) / f"perf-report-{stamp}.html"
    if not own.is_file():
        return None
    try:
        return PurePosixPath(os.path.relpath(own, page_dir.resolve())).as_posix()
    except ValueError:
        return own.as_uri()


def _change_line(cp: ChangePoint, charted: list[str]) -> ChangeLine:
    return ChangeLine(
        where=where(cp.agent, cp.task_ref),
        metric=cp.metric,
        stamp=cp.stamp,
        direction=cp.direction,
        before=value_text(cp.metric, cp.before),
        after=value_text(cp.metric, cp.after),
        ratio="n/a" if cp.ratio is None else f"x{cp.ratio:.3f}",
        coincides_with=cp.coincides_with,
        text=describe(cp),
        charted=cp.metric in charted,
        accepted=accepted_text(cp.accepted) if cp.accepted is not None else None,
    )


def _scale(metric: str, values: list[float]) -> tuple[float, str]:
    unit = METRICS[metric].unit
    if unit == "s":
        return (1000.0, "ms") if max(values, default=0) < 10 else (1.0, "s")
    if unit == "bytes":
        return 1 / 2**20, "MiB"
    if unit == "ratio":
        return 100.0, "%"
    if unit == "instructions":
        return 1e-6, "millions"
    return 1.0, "episodes/s"


def _draw(group: list[Series], labels: dict[str, str]) -> bytes:
    """One figure: a panel per metric of one (agent, task_ref) and machine class, runs in
    order on the x axis, change points as a vertical line before the first run after them."""
    import matplotlib
    from matplotlib.figure import Figure

    from tracecore_perf.report.charts import STYLE, encode_figure, shorten

    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(11, 1.2 + 2.3 * len(group)), layout="constrained")
        axes = fig.subplots(len(group), 1, squeeze=False, sharex=True)[:, 0]
        stamps = list(dict.fromkeys(p.stamp for s in group for p in s.points))
        position = {stamp: i for i, stamp in enumerate(stamps)}
        first = group[0]
        fig.suptitle(shorten(f"{where(first.agent, first.task_ref)}", 110))
        for ax, series in zip(axes, group, strict=True):
            known = [p for p in series.points if p.value is not None]
            factor, unit = _scale(series.metric, [float(p.value) for p in known])  # type: ignore[arg-type]
            xs = [position[p.stamp] for p in known]
            ys = [float(p.value) * factor for p in known]  # type: ignore[arg-type]
            ax.plot(xs, ys, marker="o", color=_LINE, linewidth=1.4, markersize=5)
            ax.set_ylabel(f"{METRICS[series.metric].title}\n({unit})", fontsize=8.5)
            if METRICS[series.metric].unit != "instructions":  # a 1% step must stay visible
                ax.set_ylim(bottom=0)
            for cp in series.change_points:
                colour = _SLOWER if cp.direction == "slower" else _FASTER
                x = position[cp.stamp] - 0.5
                ax.axvline(x, color=colour, linestyle="--", linewidth=1.5)
                ratio = "" if cp.ratio is None else f" x{cp.ratio:.2f}"
                ax.annotate(
                    f"{cp.direction}{ratio}{', accepted' if cp.accepted else ''}",
                    (x, 1),
                    xycoords=("data", "axes fraction"),
                    xytext=(4, -4),
                    textcoords="offset points",
                    va="top",
                    color=colour,
                    fontsize=8.5,
                    fontweight="bold",
                )
                bounds = [0, *[c.index for c in series.change_points], len(known)]
                k = series.change_points.index(cp)
                for lo, hi, level in ((bounds[k], cp.index, cp.before), (cp.index, bounds[k + 2], cp.after)):
                    ax.hlines(level * factor, xs[lo] - 0.3, xs[hi - 1] + 0.3, color=colour, alpha=0.45, linewidth=3)
            if series.note:
                ax.text(0.99, 0.05, series.note, transform=ax.transAxes, ha="right", fontsize=7.5, color="#666")
        ticks = [shorten(f"{s}\n{labels[s]}" if labels.get(s) else s, 40) for s in stamps]
        tilted = len(stamps) > 6
        axes[-1].set_xticks(range(len(stamps)), ticks, rotation=60 if tilted else 0, ha="right" if tilted else "center")
        axes[-1].tick_params(axis="x", labelsize=7.5)
        axes[-1].set_xlim(-0.6, len(stamps) - 0.4)
        return encode_figure(fig, "png")


def build_page(found: History, page_dir: Path, charted: list[str]) -> HistoryPage:
    """The page: every change point ``found`` holds (of every metric it looked at), and a
    chart of the ``charted`` metrics per (agent, task_ref) and machine."""
    labels = {r.stamp: r.label or "" for r in found.runs}
    groups: dict[tuple[str, str, str | None], list[Series]] = defaultdict(list)
    for series in [s for s in found.series if s.metric in charted]:
        groups[(series.agent, series.task_ref, series.machine_id)].append(series)
    # per-row groups first (by agent, task), then the run-wide ones
    keys = sorted(groups, key=lambda k: (k[0] == RUN_WIDE, k[0], k[1], k[2] or ""))
    charts = []
    for key in keys:
        group = groups[key]
        png = _draw(group, labels)
        found_here = sum(len(s.change_points) for s in group)
        cls = "" if key[2] is None else f" · machine {key[2]}"
        charts.append(
            HistoryChart(
                title=f"{where(key[0], key[1])}{cls}",
                caption=f"{', '.join(METRICS[s.metric].title for s in group)} over {len(group[0].points)} runs; "
                f"{found_here} change point(s): dashed line before the first run after a change, segment medians as bars",
                data_uri="data:image/png;base64," + base64.b64encode(png).decode("ascii"),
            )
        )
    s = found.settings
    return HistoryPage(
        database=found.database,
        generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        harness_version=__version__,
        settings_text=(
            f"{method_text(s)}; {floors_text(found.metrics, s)}; "
            f"runs in {s.order} order; {'machines mixed' if s.mix_machines else 'one series per machine'}"
        ),
        metrics_text=f"change points looked for in {', '.join(found.metrics)}; charted: "
        f"{', '.join(m for m in found.metrics if m in charted)}",
        runs=[
            RunLine(
                stamp=r.stamp,
                label=r.label,
                generated_at=r.generated_at[:19].replace("T", " "),
                episodes=r.episodes,
                workers=r.workers,
                isolation=r.isolation,
                tracecore_version=r.tracecore_version,
                python_version=r.python_version,
                machine_id=r.machine_id,
                report_href=_report_href(r.source_dir, r.stamp, page_dir),
            )
            for r in found.runs
        ],
        change_points=[_change_line(cp, charted) for cp in found.change_points],
        charts=charts,
    )


def write_history_report(found: History, target: Path, charted: list[str] | None = None) -> Path:
    """``charted``: the metrics drawn (default: every metric ``found`` looked at)."""
    from tracecore_perf.report.page import template_environment

    page = build_page(found, target.parent, found.metrics if charted is None else charted)
    html = template_environment().get_template("history.html.j2").render(page=page)
    write_atomic(target, html.encode("utf-8"))
    return target
