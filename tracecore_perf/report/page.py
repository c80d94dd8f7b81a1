"""The charts and one self-contained HTML page of a published run (``report``; the command
line is ``cli/report.py``).

The page opens from disk with no network: charts are PNG data URIs, styles are inline, and a
Content-Security-Policy forbids scripts and every outside fetch. Every string that comes from an
agent, a task or an error message goes through Jinja's autoescaping, so an error text
containing ``<script>`` shows as text.

Verdicts come from ``check.evaluate`` and the statistical comparison from
``compare.compare_runs``.
"""

from __future__ import annotations

import base64
import statistics
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from tracecore_perf import __version__
from tracecore_perf.files import write_atomic
from tracecore_perf.models import EpisodeRow, Manifest, Summary, timing_label
from tracecore_perf.published import PublishedRun
from tracecore_perf.stats import distribution
from tracecore_perf.verdicts.models import Comparison, Verdict  # the verdict stages' result types (msgspec only)

if TYPE_CHECKING:
    from tracecore_perf.report.charts import Chart


class ScenarioRowStats(msgspec.Struct, kw_only=True):
    """One scenario row's latency and failures, from the series."""

    row: int
    agent: str
    task_ref: str
    episodes: int
    failed: int
    timed_out: int
    p50_s: float | None
    p95_s: float | None
    max_s: float | None
    # instruction mode: per episode, over the row's successful counted episodes
    instructions_median: float | None = None
    instructions_min: int | None = None
    instructions_max: int | None = None


class ChartView(msgspec.Struct, kw_only=True):
    name: str
    title: str
    caption: str
    data_uri: str
    png_name: str
    svg_name: str


class ScenarioRowPair(msgspec.Struct, kw_only=True):
    """The same (agent, task_ref) in the baseline and in this run; either side may be absent."""

    agent: str
    task_ref: str
    baseline: ScenarioRowStats | None
    current: ScenarioRowStats | None


class SummaryLine(msgspec.Struct, kw_only=True):
    label: str
    current: str
    baseline: str | None = None


class Report(msgspec.Struct, kw_only=True):
    """Everything the template shows; built first, so the template only lays it out."""

    stamp: str
    generated_at: str
    harness_version: str
    manifest: Manifest
    summary_lines: list[SummaryLine]
    failure_reasons: list[tuple[str, int]]
    scenario_rows: list[ScenarioRowStats]
    metrics: list[dict[str, Any]]
    charts: list[ChartView]
    verdict: Verdict
    baseline_stamp: str | None = None
    baseline_manifest: Manifest | None = None
    scenario_row_pairs: list[ScenarioRowPair] = []
    comparison: Comparison | None = None
    timing_note: str | None = None  # instruction mode: what the time figures are worth
    # two instruction runs that kept profiles: explain's account of each changed row, and its
    # differential flame graph (an SVG document, every text in it escaped where it was drawn)
    explained: list[ExplainedRow] = []


class ExplainedRow(msgspec.Struct, kw_only=True):
    row: Any  # explain.RowExplanation
    flame_svg: str | None = None


class Written(msgspec.Struct, kw_only=True):
    report: Path
    charts: list[Path]


# --- figures for the tables ------------------------------------------------------------


def scenario_row_stats(series: list[EpisodeRow], scenario: list[Any]) -> list[ScenarioRowStats]:
    grouped: dict[int, list[EpisodeRow]] = defaultdict(list)
    for row in series:
        grouped[row.scenario_row].append(row)
    out = []
    for index, rows in sorted(grouped.items()):
        wall = distribution(r.wall_clock_s for r in rows)  # the summary's own percentile definition
        counts = [r.instructions for r in rows if r.success and r.instructions is not None]
        agent, task_ref = rows[0].agent, rows[0].task_ref
        if 0 <= index < len(scenario):
            agent, task_ref = scenario[index].agent, scenario[index].task_ref
        out.append(
            ScenarioRowStats(
                row=index,
                agent=agent,
                task_ref=task_ref,
                episodes=len(rows),
                failed=sum(not r.success for r in rows),
                timed_out=sum(r.timed_out for r in rows),
                p50_s=wall.p50,
                p95_s=wall.p95,
                max_s=wall.max,
                instructions_median=statistics.median(counts) if counts else None,
                instructions_min=min(counts, default=None),
                instructions_max=max(counts, default=None),
            )
        )
    return out


def pair_scenario_rows(baseline: list[ScenarioRowStats], current: list[ScenarioRowStats]) -> list[ScenarioRowPair]:
    """Match scenario rows by what they run, not by position: a scenario may be reordered or
    extended. Two scenario rows with the same agent and task (different seeds) keep their own lines."""
    pairs: dict[tuple[str, str, int], ScenarioRowPair] = {}
    for side, scenario_rows in (("baseline", baseline), ("current", current)):
        seen: dict[tuple[str, str], int] = defaultdict(int)
        for stats in scenario_rows:
            nth = seen[(stats.agent, stats.task_ref)]
            seen[(stats.agent, stats.task_ref)] += 1
            key = (stats.agent, stats.task_ref, nth)
            pair = pairs.setdefault(key, ScenarioRowPair(agent=stats.agent, task_ref=stats.task_ref, baseline=None, current=None))
            setattr(pair, side, stats)
    return list(pairs.values())


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.3f} s"


def _bytes(value: float | None) -> str:
    if value is None:
        return "–"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= size:
            return f"{value / size:,.2f} {unit} ({value:,.0f} B)"
    return f"{value:,.0f} B"


def _number(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _shown(value: Any) -> str:
    """A threshold's limit or actual as a person reads it: lists joined, numbers grouped."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "; ".join(_shown(v) for v in value) if value else "none"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.6g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def _delta(value: float, name: str = "") -> str:
    """A signed change, in the unit its name says."""
    if name.endswith("_bytes"):
        sign = "+" if value >= 0 else "−"
        return sign + _bytes(abs(value))
    if name.endswith("_ms_per_episode"):
        return f"{value:+.2f} ms"
    if name.endswith("_s_per_episode"):
        return f"{value * 1000:+.2f} ms"
    if name.endswith("_percent"):
        return f"{value:+.1f} percentage points"
    return f"{value:+.4g}"


def _pvalue(value: float | None) -> str:
    if value is None:
        return "–"
    return "< 0.0001" if value < 1e-4 else f"{value:.4f}"


def summary_lines(summary: Summary) -> list[tuple[str, str]]:
    s = summary
    rate = s.success_count / s.episodes if s.episodes else None
    label = timing_label(s.timing_note)
    under = f" ({label})" if label else ""
    lines = [
        (
            f"instructions per episode, {row.agent} on {row.task_ref}",
            f"median {row.median:,.0f} (min {row.min:,}, max {row.max:,})",
        )
        for row in s.instructions
    ]
    return lines + [
        ("episodes", f"{s.episodes:,}"),
        ("passed / failed", f"{s.success_count:,} / {s.failure_count:,}"),
        ("success rate", "–" if rate is None else f"{rate:.1%}"),
        ("timed out", f"{s.timed_out_count:,}"),
        ("elapsed", f"{s.elapsed_s:,.2f} s"),
        ("throughput", "–" if s.throughput_eps is None else f"{s.throughput_eps:,.2f} episodes/s"),
        (f"wall clock p50{under}", _seconds(s.wall_clock_s.p50)),
        (f"wall clock p95{under}", _seconds(s.wall_clock_s.p95)),
        (f"wall clock p99{under}", _seconds(s.wall_clock_s.p99)),
        (f"wall clock max{under}", _seconds(s.max_wall_clock_s)),
        (f"episode (TraceCore run) p50 / p95{under}", f"{_seconds(s.episode_s.p50)} / {_seconds(s.episode_s.p95)}"),
        ("queue p95", _seconds(s.queue_s.p95)),
        # Two different sizes: the files TraceCore wrote to disk (run_artifacts.*, what the
        # thresholds limit) and each artifact serialized as JSON (telemetry_verbosity.*, the
        # series' artifact_bytes, the figure of TraceCore's performance-guide scaffold).
        (
            "run artifact files on disk (run_artifacts)",
            f"{s.run_artifacts.file_count:,} files, {_bytes(s.run_artifacts.total_bytes)}",
        ),
        ("run artifact file on disk, average", _bytes(s.run_artifacts.avg_bytes)),
        ("serialized artifact bytes, total (telemetry_verbosity)", _bytes(s.telemetry_verbosity.artifact_bytes_total)),
        ("serialized artifact bytes, average", _bytes(s.telemetry_verbosity.artifact_bytes_avg)),
        ("serialized artifact bytes, max (one episode)", _bytes(s.telemetry_verbosity.artifact_bytes_max)),
        ("LLM trace entries", f"{s.telemetry_verbosity.llm_trace_entries_total:,}"),
        ("tokens used", f"{s.telemetry_verbosity.tokens_used_total:,}"),
        ("episode max RSS", _bytes(s.resources.episode_max_rss_bytes)),
        ("harness peak RSS", _bytes(s.resources.harness_peak_rss_bytes)),
        (
            "harness CPU per episode",
            "–" if s.resources.harness_cpu_ms_per_episode is None else f"{s.resources.harness_cpu_ms_per_episode:.1f} ms",
        ),
        (
            "peak live episode processes",
            "–" if s.resources.peak_episode_processes is None else str(s.resources.peak_episode_processes),
        ),
        (
            "system CPU max (sampled)",
            "–" if s.system_samples.cpu_percent_max is None else f"{s.system_samples.cpu_percent_max:.0f} %",
        ),
    ]


# --- verdict and comparison, from the verdict stages -------------------------------------


def verdict_for(run: PublishedRun, baseline: PublishedRun | None, thresholds: Any) -> Verdict:
    from tracecore_perf.verdicts import check

    return check.evaluate(run, thresholds, baseline)


def comparison_for(baseline: PublishedRun, run: PublishedRun) -> Comparison:
    from tracecore_perf.verdicts import compare

    # The report shows runs set up differently, or tainted, side by side (with compare's warning
    # about it); `compare` itself refuses them without --allow-setup-mismatch / --allow-tainted.
    return compare.compare_runs(baseline, run, allow_setup_mismatch=True, allow_tainted=True)


# --- assembly --------------------------------------------------------------------------


def template_environment() -> Any:
    import jinja2

    # autoescape=True, not select_autoescape(): the template is named *.html.j2, which
    # select_autoescape's extension check would not recognise as HTML.
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tracecore_perf.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["seconds"] = _seconds
    env.filters["bytes"] = _bytes
    env.filters["number"] = _number
    env.filters["shown"] = _shown
    env.filters["delta"] = _delta
    env.filters["pvalue"] = _pvalue
    return env


def _chart_view(chart: Chart) -> ChartView:
    data = base64.b64encode(chart.png.read_bytes()).decode("ascii")
    return ChartView(
        name=chart.name,
        title=chart.title,
        caption=chart.caption,
        data_uri=f"data:image/png;base64,{data}",
        png_name=chart.png.name,
        svg_name=chart.svg.name,
    )


def report_path(output_dir: Path, stamp: str) -> Path:
    return output_dir / f"perf-report-{stamp}.html"


def report_files_in(output_dir: Path, stamp: str) -> list[Path]:
    """The files of run ``stamp``'s report already in ``output_dir`` (its page, its charts,
    a link of that name too): what a report written there would replace."""
    page = report_path(output_dir, stamp)
    charts = sorted(output_dir.glob(f"perf-chart-*-{stamp}.png")) + sorted(output_dir.glob(f"perf-chart-*-{stamp}.svg"))
    return [page] * (page.exists() or page.is_symlink()) + charts


def explained_rows(baseline: PublishedRun, run: PublishedRun) -> list[ExplainedRow]:
    """``explain``'s rows whose count moved, each with its flame graph, when both runs kept profiles."""
    from tracecore_perf.explain import explain_runs, python_stacks
    from tracecore_perf.explain.flame import differential_svg

    if not all(any(row.profile for row in each.series()) for each in (baseline, run)):
        return []
    rows = []
    for row in explain_runs(baseline, run, top=5).changed:
        stacks = python_stacks(baseline, run, row.agent, row.task_ref)
        title = f"{row.agent} on {row.task_ref}: {baseline.stamp} -> {run.stamp}"
        rows.append(ExplainedRow(row=row, flame_svg=differential_svg(*stacks, title) if stacks else None))
    return rows


def write_report(
    run: PublishedRun,
    baseline: PublishedRun | None = None,
    output_dir: Path | None = None,
    thresholds: Any = None,
    verdict: Verdict | None = None,
) -> Written:
    """Render the charts and the HTML page of ``run`` into ``output_dir`` (default: next to the
    run's artifacts). ``verdict``: ``check``'s, when the caller has it already (``run --check
    --report``); otherwise it is reached here."""
    # matplotlib is imported here, not at module level: bad input is refused before paying for it.
    from tracecore_perf.report import charts

    out = output_dir or run.output_dir
    data = charts.RunData.load(run)
    baseline_data = charts.RunData.load(baseline) if baseline is not None else None
    # Verdicts first: if check refuses the input, nothing has been written yet.
    verdict = verdict if verdict is not None and baseline is None else verdict_for(run, baseline, thresholds)
    comparison = comparison_for(baseline, run) if baseline is not None else None
    metrics = run.metrics() if run.paths["metrics"].is_file() else []  # read, like every input, before any write

    rendered = charts.render(data, out)
    if baseline_data is not None:
        rendered.append(charts.render_comparison(data, baseline_data, out))

    lines = summary_lines(data.summary)
    base_lines = dict(summary_lines(baseline_data.summary)) if baseline_data else {}
    page = Report(
        stamp=run.stamp,
        generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        harness_version=__version__,
        manifest=data.manifest,
        summary_lines=[SummaryLine(label=label, current=value, baseline=base_lines.get(label)) for label, value in lines],
        failure_reasons=sorted(data.summary.failure_reasons.items(), key=lambda kv: (-kv[1], kv[0])),
        scenario_rows=scenario_row_stats(data.series, data.manifest.scenario),
        timing_note=data.summary.timing_note,
        metrics=metrics,
        charts=[_chart_view(chart) for chart in rendered],
        verdict=verdict,
    )
    if baseline is not None and baseline_data is not None:
        page.baseline_stamp = baseline.stamp
        page.baseline_manifest = baseline_data.manifest
        page.scenario_row_pairs = pair_scenario_rows(
            scenario_row_stats(baseline_data.series, baseline_data.manifest.scenario), page.scenario_rows
        )
        page.comparison = comparison
        page.explained = explained_rows(baseline, run)

    html = template_environment().get_template("report.html.j2").render(page=page)
    target = report_path(out, run.stamp)
    write_atomic(target, html.encode("utf-8"))
    return Written(report=target, charts=[p for c in rendered for p in (c.png, c.svg)])
