"""Charts: a published run -> PNG and SVG figures, one per review question of TraceCore's performance guide.

Figures are built with matplotlib's object API (``Figure`` directly, never pyplot), so no global
backend or figure registry is touched and the Agg renderer is used for PNG whatever the host's
display. Every figure answers one question; its caption says which, and the HTML report shows it.

Strings from agents, tasks and error messages reach matplotlib as labels: math-text parsing is
switched off so a ``$`` in an error message renders as itself instead of failing the render,
and every such label goes through :func:`shorten`, which shows control characters escaped
(``escape.terminal``) and the characters XML 1.0 does not allow too (``escape.xml``: the SVG
writer escapes markup but would write them, and no parser reads the file then).
"""

from __future__ import annotations

import io
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

import matplotlib
import msgspec
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from tracecore_perf.escape import terminal, xml
from tracecore_perf.files import write_atomic
from tracecore_perf.models import EpisodeRow, Manifest, Sample, Summary
from tracecore_perf.published import PublishedRun

MiB = 1024 * 1024
GiB = 1024 * MiB

STYLE = {  # every chart of ours: the run report's and the history page's
    "text.parse_math": False,  # agent/task/error strings are data, not TeX
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8.5,
    "legend.framealpha": 0.85,
    "svg.hashsalt": "tracecore-perf",  # stable ids: a re-rendered baseline chart diffs cleanly
}
_DPI = 110
# Legends sit in a row above their axes, so they never cover a data point.
_ABOVE = {"loc": "lower left", "bbox_to_anchor": (0, 1.01), "frameon": False, "borderaxespad": 0}
_FAIL_COLOUR = "#c0392b"
_MAX_LANES = 10
MIN_SAMPLES = 5  # resource samples before the sampled charts draw a time series


class Chart(msgspec.Struct, frozen=True):
    """One rendered figure: where its files are and what it is for."""

    name: str
    title: str
    caption: str
    png: Path
    svg: Path


class RunData(msgspec.Struct):
    """What the figures are drawn from, read once."""

    manifest: Manifest
    summary: Summary
    series: list[EpisodeRow]
    samples: list[Sample]
    resumed_at: list[float] = []  # run time where each later attempt of a resumed run begins

    @classmethod
    def load(cls, run: PublishedRun) -> RunData:
        """Read a published run's manifest, summary, series and samples (a resumed run's
        attempts laid end to end on one clock: :func:`concatenate_attempts`)."""
        samples = run.samples() if run.paths["samples"].is_file() else []
        data = cls(manifest=run.manifest(), summary=run.summary(), series=run.series(), samples=samples)
        return concatenate_attempts(data)


def concatenate_attempts(data: RunData) -> RunData:
    """Lay a resumed run's attempts end to end on one time axis.

    Each attempt restarts the clock (``started_s``, ``t_s``) and the monitor's counters at zero.
    Rows say which attempt they belong to; samples do not, but samples are in order and the
    clock or the episodes-done counter going backwards marks where the next attempt's begin.
    (An attempt that finished no episode and ran shorter than the next one's first sample cannot
    be told apart; its few samples then stay with the next attempt.) Attempt k is shifted by
    the time the attempts before it ran, and its counters by the episodes they finished.
    """
    attempts = sorted({r.attempt for r in data.series})
    segments: list[list[Sample]] = []
    for sample in data.samples:
        last = segments[-1][-1] if segments else None
        if last is None or sample.t_s < last.t_s or sample.episodes_done < last.episodes_done:
            segments.append([])
        segments[-1].append(sample)
    if len(attempts) <= 1 and len(segments) <= 1:
        return data
    by_attempt: dict[int, list[EpisodeRow]] = defaultdict(list)
    for row in data.series:
        by_attempt[row.attempt].append(row)
    rows: list[EpisodeRow] = []
    samples: list[Sample] = []
    resumed_at: list[float] = []
    shift, done, failed = 0.0, 0, 0
    for i in range(max(len(attempts), len(segments))):
        mine = by_attempt[attempts[i]] if i < len(attempts) else []
        segment = segments[i] if i < len(segments) else []
        if i:
            resumed_at.append(shift)
        rows += [msgspec.structs.replace(r, started_s=round(r.started_s + shift, 6)) for r in mine]
        samples += [
            msgspec.structs.replace(
                s, t_s=round(s.t_s + shift, 4), episodes_done=s.episodes_done + done, episodes_failed=s.episodes_failed + failed
            )
            for s in segment
        ]
        shift += max([r.started_s + r.wall_clock_s for r in mine] + [s.t_s for s in segment] + [0.0])
        done += len(mine)
        failed += sum(not r.success for r in mine)
    rows.sort(key=lambda r: r.episode_index)
    return RunData(manifest=data.manifest, summary=data.summary, series=rows, samples=samples, resumed_at=resumed_at)


def _mark_resumes(ax: Axes, data: RunData, label: bool = False) -> None:
    """Dashed lines where a resumed run's later attempts begin."""
    for i, t in enumerate(data.resumed_at):
        ax.axvline(t, color="#7f7f7f", linestyle="--", linewidth=1, label="resumed here" if label and i == 0 else None)


# --- helpers ---------------------------------------------------------------------------


def shorten(text: str, limit: int = 60) -> str:
    """A label from data (an agent, a task ref, an error): one line of at most ``limit``
    characters, safe in an SVG, its control characters shown escaped."""
    text = xml(terminal(" ".join(text.split())))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def row_label(manifest: Manifest, row: int, agent: str | None = None, task_ref: str | None = None) -> str:
    """``row 2: chain_agent · rate_limited_chain@1`` — the scenario row, short enough for a legend."""
    if 0 <= row < len(manifest.scenario):
        agent, task_ref = manifest.scenario[row].agent, manifest.scenario[row].task_ref
    name = PurePosixPath(agent or "?").name.removesuffix(".py")
    return shorten(f"row {row}: {name} · {task_ref or '?'}", 70)


def row_colours(rows: Sequence[int]) -> dict[int, str]:
    """A colour per scenario-row index, in index order (tab10, tab20 past ten rows), the
    same in every chart of a run."""
    cmap = matplotlib.colormaps["tab10" if len(rows) <= 10 else "tab20"]
    return {row: to_hex(cmap(i % cmap.N)) for i, row in enumerate(sorted(rows))}


def time_unit(values: Sequence[float]) -> tuple[str, float]:
    """Milliseconds when everything of interest is under ten seconds, else seconds."""
    top = float(np.percentile(values, 95)) if len(values) else 0.0
    return ("ms", 1000.0) if top < 10 else ("s", 1.0)


def rolling_median(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing median: the value at i looks only back, so a late rise shows where it starts."""
    out = np.empty(len(values))
    for i in range(len(values)):
        out[i] = np.median(values[max(0, i - window + 1) : i + 1])
    return out


def _empty(ax: Axes, message: str, *, keep_x: bool = False) -> None:
    """A panel with nothing to draw says why. ``keep_x``: leave the x ticks alone (a panel that
    shares its x axis with drawn ones would take their ticks away)."""
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, fontsize=11, color="#555")
    if not keep_x:
        ax.set_xticks([])
    ax.set_yticks([])


def _rows_by_scenario(series: Sequence[EpisodeRow]) -> dict[int, list[EpisodeRow]]:
    """The series' episodes grouped by scenario-row index, in index order."""
    grouped: dict[int, list[EpisodeRow]] = defaultdict(list)
    for row in series:
        grouped[row.scenario_row].append(row)
    return dict(sorted(grouped.items()))


def failure_reason(row: EpisodeRow) -> str:
    """The same key the summary's ``failure_reasons`` counts by."""
    return row.error or "unsuccessful_run"


def _subtitle(fig: Figure, data: RunData) -> None:
    """The footer line of every chart: run stamp, episodes, workers, host, TraceCore version,
    and how many attempts a resumed run's time axis lays end to end."""
    m = data.manifest
    fig.text(
        0.01,
        0.005,
        f"run {m.stamp} · {data.summary.episodes} episodes · {m.settings.workers} workers · "
        f"{m.host.cpu_model} ({m.host.logical_cores} cores) · tracecore {m.interpreter.tracecore_version}"
        + (f" · resumed: {len(data.resumed_at) + 1} attempts laid end to end" if data.resumed_at else ""),
        fontsize=7.5,
        color="#666",
        ha="left",
        va="bottom",
    )


# --- the figures -----------------------------------------------------------------------


def latency_timeline(fig: Figure, data: RunData) -> None:
    """``latency``: is latency increasing late in the run? Every episode's wall clock by
    its episode index, one colour per scenario row, with a trailing rolling median per row
    (window: an eighth of the row's episodes, 3 to 25); failed episodes are crosses. No
    threshold: :func:`~tracecore_perf.verdicts.trends.late_latency_drift` judges the drift."""
    fig.suptitle("Episode latency over the run")
    ax = fig.subplots()
    if not data.series:
        _empty(ax, "no episodes in this run")
        return
    unit, scale = time_unit([r.wall_clock_s for r in data.series])
    grouped = _rows_by_scenario(data.series)
    colours = row_colours(list(grouped))
    for row, rows in grouped.items():
        x = np.array([r.episode_index for r in rows])
        y = np.array([r.wall_clock_s for r in rows]) * scale
        ok = np.array([r.success for r in rows])
        label = row_label(data.manifest, row, rows[0].agent, rows[0].task_ref)
        ax.scatter(x[ok], y[ok], s=9, alpha=0.45, color=colours[row], linewidths=0)
        if (~ok).any():
            ax.scatter(x[~ok], y[~ok], s=22, marker="x", color=colours[row], linewidths=1.1)
        window = max(3, min(25, len(rows) // 8))
        ax.plot(x, rolling_median(y, window), color=colours[row], linewidth=1.8, label=label)
    ax.set_xlabel("episode index (order planned) · dots: episodes · lines: trailing rolling median per scenario row")
    ax.set_ylabel(f"wall-clock latency ({unit})")
    ax.set_ylim(bottom=0)
    ax.margins(x=0.01)
    handles, labels = ax.get_legend_handles_labels()
    if not all(r.success for r in data.series):
        handles.append(Line2D([], [], marker="x", color="#333", linestyle="none"))
        labels.append("failed episode (×)")
    ax.legend(handles, labels, ncols=2, **_ABOVE)


def latency_distribution(fig: Figure, data: RunData) -> None:
    """``distribution``: did one scenario spike disproportionately? Per scenario row, a box
    of its wall clocks (p25-p75, whiskers p5-p95) with every episode as a jittered dot (a
    fixed seed: the same run draws the same picture), labelled with n, p50, p95 and max. No
    threshold: :func:`~tracecore_perf.verdicts.trends.long_tail_spikes` judges the spikes."""
    fig.suptitle("Latency distribution per scenario row")
    ax = fig.subplots()
    if not data.series:
        _empty(ax, "no episodes in this run")
        return
    unit, scale = time_unit([r.wall_clock_s for r in data.series])
    grouped = _rows_by_scenario(data.series)
    colours = row_colours(list(grouped))
    order = list(grouped)[::-1]  # row 0 at the top
    values = [np.array([r.wall_clock_s for r in grouped[row]]) * scale for row in order]
    parts = ax.boxplot(
        values,
        orientation="horizontal",
        whis=(5, 95),
        widths=0.55,
        patch_artist=True,
        showfliers=False,
        medianprops={"color": "black", "linewidth": 1.5},
    )
    rng = np.random.default_rng(0)  # fixed jitter: the same run draws the same picture
    for i, (row, vals) in enumerate(zip(order, values, strict=True), start=1):
        parts["boxes"][i - 1].set(facecolor=colours[row], alpha=0.35)
        ax.scatter(vals, i + rng.uniform(-0.18, 0.18, len(vals)), s=6, alpha=0.5, color=colours[row], linewidths=0)
    labels = []
    for row, vals in zip(order, values, strict=True):
        p50, p95, top = np.percentile(vals, [50, 95, 100])
        first = grouped[row][0]
        stats = f"n={len(vals)} · p50 {p50:.3g} · p95 {p95:.3g} · max {top:.3g} {unit}"
        labels.append(f"{row_label(data.manifest, row, first.agent, first.task_ref)}\n{stats}")
    ax.set_yticks(range(1, len(order) + 1), labels)
    ax.set_xlabel(f"wall-clock latency ({unit}); box p25–p75, whiskers p5–p95, dots every episode")
    ax.set_xlim(left=0)
    ax.grid(axis="y", visible=False)


def _completion_curve(data: RunData) -> tuple[np.ndarray, np.ndarray]:
    """(t_s, episodes done) from the run start: the monitor's samples when there are enough of
    them, else a regular grid over the rows' end times (a run of a few seconds has few samples)."""
    if len(data.samples) >= 8:
        t = [0.0] + [s.t_s for s in data.samples]
        done = [0] + [s.episodes_done for s in data.samples]
        return np.array(t), np.array(done, dtype=float)
    ends = np.sort([r.started_s + r.wall_clock_s for r in data.series])
    if not len(ends):
        return np.array([]), np.array([])
    grid = np.linspace(0.0, float(ends[-1]), max(2, min(60, len(ends) + 1)))
    return grid, np.searchsorted(ends, grid, side="right").astype(float)


def trailing_rate(t: np.ndarray, done: np.ndarray, window_s: float) -> np.ndarray:
    """Episodes per second over the trailing ``window_s`` at each sample (the first samples
    use what they have): exact differences of the counter, no zero-padding at the edges."""
    j = np.searchsorted(t, t - window_s, side="left")
    j = np.minimum(j, np.arange(len(t)) - 1).clip(min=0)
    dt = t - t[j]
    return np.divide(done - done[j], dt, out=np.zeros_like(dt), where=dt > 0)


def throughput(fig: Figure, data: RunData) -> None:
    """``throughput``: three panels on one time axis: episodes finished (the monitor's
    samples, else the rows' end times), episodes per second (per sample interval and over a
    trailing window of at least 5 s, beside the run's mean), and the sampled live episode
    processes against ``--workers``. The process panel needs ``MIN_SAMPLES`` samples."""
    fig.suptitle("Throughput and live episode processes over time")
    axes = fig.subplots(3, 1, sharex=True, height_ratios=[1.2, 1, 1])
    t, done = _completion_curve(data)
    if len(t) < 2:
        for ax in axes:
            _empty(ax, "too few samples to draw")
        return
    axes[0].plot(t, done, color="#2c7fb8", linewidth=1.8, label=f"episodes finished (of {data.manifest.settings.episodes})")
    for i, ax in enumerate(axes):
        _mark_resumes(ax, data, label=i == 0)
    axes[0].set_ylabel("episodes")
    axes[0].set_ylim(bottom=0)
    axes[0].legend(**_ABOVE)

    interval = float(np.median(np.diff(t)))
    window = max(5.0, 4 * interval)
    axes[1].plot(
        t[1:],
        trailing_rate(t, done, interval * 1.01)[1:],
        color="#2c7fb8",
        alpha=0.35,
        linewidth=0.8,
        label="per sample interval",
    )
    axes[1].plot(t[1:], trailing_rate(t, done, window)[1:], color="#2c7fb8", linewidth=1.8, label=f"trailing {window:.3g} s")
    if data.summary.throughput_eps:
        axes[1].axhline(
            data.summary.throughput_eps,
            color="#444",
            linestyle="--",
            linewidth=1,
            label=f"run mean {data.summary.throughput_eps:.3g} episodes/s",
        )
    axes[1].set_ylabel("episodes/s")
    axes[1].set_ylim(bottom=0)
    axes[1].legend(ncols=3, **_ABOVE)

    axes[2].set_xlabel("time since run start (s)")
    reason = _too_few_samples(data)
    if reason is not None:
        _empty(axes[2], reason, keep_x=True)
        return
    counts = [s.episode_processes for s in data.samples]
    workers = data.manifest.settings.workers
    peak = max(workers, *counts)
    axes[2].step(
        [s.t_s for s in data.samples],
        counts,
        where="post",
        color="#41ab5d",
        linewidth=1.5,
        label="live episode processes (sampled)",
    )
    axes[2].axhline(workers, color="#444", linestyle=":", linewidth=1.2, label=f"--workers {workers}")
    axes[2].set_ylabel("processes")
    axes[2].set_ylim(0, peak + 0.5)
    axes[2].yaxis.get_major_locator().set_params(integer=True)
    axes[2].legend(ncols=2, **_ABOVE)


def _too_few_samples(data: RunData) -> str | None:
    """Why the samples cannot make a time series, or None when they can."""
    n = len(data.samples)
    if n >= MIN_SAMPLES:
        return None
    if n == 0:
        return "no resource samples in this run"
    return f"too few resource samples to draw a time series: {n} (needs {MIN_SAMPLES})"


def resources(fig: Figure, data: RunData) -> None:
    """``resources``: runaway growth? From the monitor's samples (at least ``MIN_SAMPLES``):
    system CPU and the harness's (as a share of all cores), RSS of the harness, its worker
    processes and the live episode processes, and the system memory available. No
    threshold: :func:`~tracecore_perf.verdicts.trends.memory_growth` judges the growth."""
    fig.suptitle("CPU and memory over time")
    axes = fig.subplots(3, 1, sharex=True)
    reason = _too_few_samples(data)
    if reason:
        for ax in axes:
            _empty(ax, reason)
        return
    t = np.array([s.t_s for s in data.samples])
    cores = data.manifest.host.logical_cores
    for i, ax in enumerate(axes):
        _mark_resumes(ax, data, label=i == 0)
    axes[0].plot(t, [s.cpu_percent for s in data.samples], color="#d95f0e", linewidth=1.5, label="system, all cores")
    # psutil gives a process's CPU as a share of one core; divide so both lines share the 0–100 % scale.
    harness_cpu = [s.harness_cpu_percent / max(cores, 1) for s in data.samples]
    axes[0].plot(t, harness_cpu, color="#756bb1", linewidth=1.2, label=f"harness process (share of all {cores} cores)")
    axes[0].set_ylabel("CPU busy (%)")
    axes[0].set_ylim(0, 105)
    axes[0].legend(ncols=2, **_ABOVE)

    for values, colour, label in (
        ([s.harness_rss_bytes for s in data.samples], "#756bb1", "harness"),
        ([s.workers_rss_bytes for s in data.samples], "#2c7fb8", "worker processes (sum)"),
        ([s.episode_rss_bytes for s in data.samples], "#41ab5d", "live episode processes (sum)"),
    ):
        axes[1].plot(t, np.array(values) / MiB, color=colour, linewidth=1.4, label=label)
    axes[1].set_ylabel("RSS (MiB)")
    axes[1].set_ylim(bottom=0)
    axes[1].legend(ncols=3, **_ABOVE)

    total = data.samples[0].memory_total_bytes / GiB
    available = np.array([s.memory_available_bytes for s in data.samples]) / GiB
    axes[2].plot(t, available, color="#636363", linewidth=1.5, label=f"system memory available (of {total:.1f} GiB)")
    axes[2].set_ylabel("available (GiB)")
    # Show at least ±0.5 GiB around the line: a flat line should look flat, not like noise blown up.
    lo, hi = float(available.min()), float(available.max())
    pad = max(0.5, (hi - lo) * 0.25)
    axes[2].set_ylim(max(0.0, lo - pad), min(total, hi + pad) if hi + pad <= total else hi + pad)
    axes[2].legend(**_ABOVE)
    axes[2].set_xlabel("time since run start (s)")


def artifact_growth(fig: Figure, data: RunData) -> None:
    """Cumulative *serialized* artifact bytes (the series' ``artifact_bytes``, summed in
    ``telemetry_verbosity``), with the run's *on-disk* total (``run_artifacts.total_bytes``,
    what check limits) as a separate mark: they are different sizes and labelled so."""
    from tracecore_perf.verdicts.check import default_total_bytes_limit

    fig.suptitle("Artifact bytes against episodes")
    ax = fig.subplots()
    if not data.series:
        _empty(ax, "no episodes in this run")
        return
    x = np.arange(1, len(data.series) + 1, dtype=float)
    cumulative = np.cumsum([r.artifact_bytes for r in data.series]).astype(float)
    on_disk = data.summary.run_artifacts.total_bytes
    top = max(float(cumulative[-1]), float(on_disk))
    scale, unit = (MiB, "MiB") if top >= 4 * MiB else (1024, "KiB")
    ax.plot(
        x,
        cumulative / scale,
        color="#2c7fb8",
        linewidth=3,
        alpha=0.6,
        label="serialized artifact bytes (series artifact_bytes), cumulative in episode order",
    )
    if len(x) >= 2:
        slope, intercept = np.polyfit(x, cumulative, 1)
        fit = slope * x + intercept
        ss_res = float(np.sum((cumulative - fit) ** 2))
        ss_tot = float(np.sum((cumulative - cumulative.mean()) ** 2))
        r2 = 1 - ss_res / ss_tot if ss_tot > 0 else 1.0
        ax.plot(
            x,
            fit / scale,
            color="#d95f0e",
            linestyle="--",
            linewidth=1.3,
            label=f"linear fit: {slope:,.0f} bytes/episode, R² = {r2:.4f}",
        )
    if on_disk:
        ax.scatter(
            [x[-1]],
            [on_disk / scale],
            marker="D",
            s=40,
            color="#41ab5d",
            zorder=3,
            label=f"run artifact files on disk (run_artifacts.total_bytes): {on_disk:,} bytes",
        )
    limit = default_total_bytes_limit(len(data.series))  # check's default for this many episodes
    if top > limit * 0.5:
        ax.axhline(
            limit / scale,
            color=_FAIL_COLOUR,
            linestyle=":",
            linewidth=1.2,
            label=f"check's default limit on the files on disk: {limit:,} bytes",
        )
    ax.set_xlabel("episodes, in episode order")
    ax.set_ylabel(f"cumulative bytes ({unit})")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.legend(ncols=2, **_ABOVE)


def failures(fig: Figure, data: RunData) -> None:
    """``failures``: are failures clustered? Every failed episode at the time it ended, one
    lane per failure reason (the summary's ``failure_reasons`` key; past ``_MAX_LANES``
    reasons the rarest share one lane), coloured by scenario row. No threshold:
    :func:`~tracecore_perf.verdicts.trends.failure_clusters` judges the clustering."""
    fig.suptitle("Failures on the timeline, by reason")
    ax = fig.subplots()
    ax.set_xlabel("time the episode ended, since run start (s)")
    failed = [r for r in data.series if not r.success]
    if not failed:
        _empty(ax, f"no failed episodes in {len(data.series)}")
        return
    by_reason: dict[str, list[EpisodeRow]] = defaultdict(list)
    for row in failed:
        by_reason[failure_reason(row)].append(row)
    if len(by_reason) > _MAX_LANES:
        # Distinct error texts can be many (one per seed); keep the frequent ones readable.
        ranked = sorted(by_reason, key=lambda k: (-len(by_reason[k]), k))
        rest = ranked[_MAX_LANES - 1 :]
        other = [r for reason in rest for r in by_reason.pop(reason)]
        by_reason[f"{len(rest)} other reasons"] = other
    reasons = sorted(by_reason, key=lambda k: (-len(by_reason[k]), k))[::-1]  # most frequent on top
    colours = row_colours(sorted({r.scenario_row for r in data.series}))
    end = max(r.started_s + r.wall_clock_s for r in data.series)
    for lane, reason in enumerate(reasons):
        rows = by_reason[reason]
        ax.scatter(
            [r.started_s + r.wall_clock_s for r in rows],
            [lane] * len(rows),
            marker="|",
            s=260,
            linewidths=1.6,
            color=[colours[r.scenario_row] for r in rows],
        )
        # The reason as a caption over its lane: long error texts get the full width of the plot.
        ax.annotate(
            f"{shorten(reason, 140)}  (×{len(rows)})",
            xy=(0.003, lane),
            xycoords=("axes fraction", "data"),
            xytext=(0, 11),  # points: just above the tick marks, whatever the figure's height
            textcoords="offset points",
            fontsize=8.5,
            va="bottom",
            ha="left",
        )
    _mark_resumes(ax, data)
    ax.set_yticks([])
    ax.set_ylim(-0.5, len(reasons) - 0.35)
    ax.set_xlim(0, end * 1.02)
    ax.grid(axis="y", visible=False)
    used = sorted({r.scenario_row for r in failed})
    handles = [Line2D([], [], marker="|", markersize=12, mew=2, linestyle="none", color=colours[row]) for row in used]
    ax.legend(handles, [row_label(data.manifest, row) for row in used], ncols=min(3, len(used)), **_ABOVE)


class _Spec(msgspec.Struct, frozen=True):
    """One figure of the report: its file name part, title and caption (the question it
    answers), size in inches (or a function of the run's data) and the function drawing it."""

    name: str
    title: str
    caption: str
    size: tuple[float, float] | Callable[[RunData], tuple[float, float]]
    draw: Callable[[Figure, RunData], None]


FIGURES: tuple[_Spec, ...] = (
    _Spec(
        "latency",
        "Latency over the run",
        "Is latency increasing late in the run? Every episode's wall-clock time by its index, one colour per scenario "
        "row, with a trailing rolling median; failed episodes are crosses.",
        (11, 5.5),
        latency_timeline,
    ),
    _Spec(
        "distribution",
        "Latency distribution per scenario row",
        "Did one scenario spike disproportionately? Each row's latency spread with p50, p95 and max.",
        (11, 4.8),
        latency_distribution,
    ),
    _Spec(
        "throughput",
        "Throughput and live episode processes",
        "Episodes finished, episodes per second and live episode processes over time, from the monitor's samples; "
        "the processes line should sit at --workers while episodes remain.",
        (11, 7),
        throughput,
    ),
    _Spec(
        "resources",
        "CPU and memory",
        "Do CPU or memory samples show runaway growth? System CPU, the harness's CPU, resident memory of the harness, "
        "its worker processes and the live episode processes, and the system's available memory.",
        (11, 7.5),
        resources,
    ),
    _Spec(
        "artifacts",
        "Artifact growth",
        "Does artifact growth stay roughly linear with episode count? Cumulative serialized artifact bytes (each "
        "episode's TraceCore artifact as JSON, the series' artifact_bytes) with a least-squares line, R² near 1 "
        "meaning linear; the diamond is the run's artifact files on disk (run_artifacts.total_bytes), a different size.",
        (11, 5),
        artifact_growth,
    ),
    _Spec(
        "failures",
        "Failures on the timeline",
        "Are failures clustered on a single task, seed pattern or stretch of the run? Every failed episode at the "
        "time it ended, one lane per failure reason, coloured by scenario row.",
        lambda data: (11, max(3.2, 2.0 + 0.6 * min(_MAX_LANES, len({failure_reason(r) for r in data.series if not r.success})))),
        failures,
    ),
)


def chart_paths(output_dir: Path, name: str, stamp: str) -> tuple[Path, Path]:
    """Where chart ``name`` of run ``stamp`` goes: ``perf-chart-<name>-<stamp>`` .png, .svg."""
    base = output_dir / f"perf-chart-{name}-{stamp}"
    return base.with_suffix(".png"), base.with_suffix(".svg")


def render(data: RunData, output_dir: Path) -> list[Chart]:
    """Draw every figure of ``data`` into ``output_dir`` as PNG and SVG."""
    charts = []
    stamp = data.manifest.stamp
    with matplotlib.rc_context(STYLE):
        for spec in FIGURES:
            size = spec.size(data) if callable(spec.size) else spec.size
            fig = Figure(figsize=size, layout="constrained")
            fig.get_layout_engine().set(rect=(0, 0.03, 1, 0.97))  # room for the footer line
            spec.draw(fig, data)
            _subtitle(fig, data)
            png, svg = chart_paths(output_dir, spec.name, stamp)
            write_atomic(png, encode_figure(fig, "png"))
            write_atomic(svg, encode_figure(fig, "svg"))
            charts.append(Chart(name=spec.name, title=spec.title, caption=spec.caption, png=png, svg=svg))
    return charts


_CLIP_ID = re.compile(rb"\bp[0-9a-f]{10}\b")


def encode_figure(fig: Figure, fmt: str) -> bytes:
    """The figure's bytes. Re-rendering the same run gives the same bytes, so a refreshed
    baseline's charts diff only where the data changed: no dates or versions in the files, and
    the SVG's clip-path ids (hashed from object ids by matplotlib) renumbered in order."""
    buf = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    fig.savefig(buf, format=fmt, dpi=_DPI, metadata=metadata)
    data = buf.getvalue()
    if fmt == "svg":
        ids: dict[bytes, bytes] = {}
        data = _CLIP_ID.sub(lambda m: ids.setdefault(m.group(0), b"clip%d" % len(ids)), data)
    return data


def latency_comparison(fig: Figure, current: RunData, baseline: RunData) -> None:
    """Baseline and current latency per (agent, task_ref), paired: rows match by what they run,
    not by their position in the scenario."""
    fig.suptitle(f"Latency: baseline {baseline.manifest.stamp} against this run {current.manifest.stamp}")
    ax = fig.subplots()
    groups: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: {"baseline": [], "current": []})
    for which, data in (("baseline", baseline), ("current", current)):
        for row in data.series:
            groups[(row.agent, row.task_ref)][which].append(row.wall_clock_s)
    if not groups:
        _empty(ax, "no episodes in either run")
        return
    unit, scale = time_unit([v for g in groups.values() for vals in g.values() for v in vals])
    # This run's rows in scenario order, then what only the baseline has; top to bottom.
    order = {
        key: i
        for i, key in enumerate(
            dict.fromkeys((r.agent, r.task_ref) for r in sorted(current.series, key=lambda r: r.scenario_row))
        )
    }
    keys = sorted(groups, key=lambda k: (order.get(k, len(order)), k))[::-1]
    labels, positions = [], []
    for i, key in enumerate(keys):
        centre = i * 3 + 1
        for offset, which, colour in ((0.45, "baseline", "#9e9e9e"), (-0.45, "current", "#2c7fb8")):
            vals = np.array(groups[key][which]) * scale
            if vals.size:
                box = ax.boxplot(
                    [vals],
                    positions=[centre + offset],
                    orientation="horizontal",
                    whis=(5, 95),
                    widths=0.7,
                    patch_artist=True,
                    showfliers=False,
                    medianprops={"color": "black", "linewidth": 1.5},
                )
                box["boxes"][0].set(facecolor=colour, alpha=0.55)
        base, cur = groups[key]["baseline"], groups[key]["current"]
        if base and cur:
            b50, c50 = float(np.median(base)), float(np.median(cur))
            change = f"p50 {b50 * scale:.3g} → {c50 * scale:.3g} {unit} ({(c50 / b50 - 1) * 100:+.0f}%)" if b50 > 0 else ""
        else:
            change = "only in the baseline" if base else "only in this run"
        name = PurePosixPath(key[0]).name.removesuffix(".py")
        labels.append(f"{shorten(f'{name} · {key[1]}', 60)}\n{change}")
        positions.append(centre)
    ax.set_yticks(positions, labels)
    ax.set_xlim(left=0)
    ax.set_xlabel(f"wall-clock latency ({unit}); box p25–p75, whiskers p5–p95")
    ax.grid(axis="y", visible=False)
    handles = [Patch(facecolor=c, alpha=0.55, edgecolor="black") for c in ("#9e9e9e", "#2c7fb8")]
    ax.legend(handles, [f"baseline {baseline.manifest.stamp}", f"this run {current.manifest.stamp}"], ncols=2, **_ABOVE)


def render_comparison(current: RunData, baseline: RunData, output_dir: Path) -> Chart:
    """Draw the ``comparison`` chart (:func:`latency_comparison`) of ``current`` against
    ``baseline`` into ``output_dir`` as PNG and SVG, its height growing with the (agent, task)
    pairs of both runs."""
    keys = {(r.agent, r.task_ref) for d in (current, baseline) for r in d.series}
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(11, 2.2 + 0.9 * max(1, len(keys))), layout="constrained")
        fig.get_layout_engine().set(rect=(0, 0.03, 1, 0.97))
        latency_comparison(fig, current, baseline)
        _subtitle(fig, current)
        png, svg = chart_paths(output_dir, "comparison", current.manifest.stamp)
        write_atomic(png, encode_figure(fig, "png"))
        write_atomic(svg, encode_figure(fig, "svg"))
    return Chart(
        name="comparison",
        title="Latency against the baseline",
        caption="Did a scenario get slower than in the baseline? Each (agent, task) of either run, baseline above this run, "
        "with the change of the median. Significance is compare's job; this shows the spread behind it.",
        png=png,
        svg=svg,
    )
