"""``export RUN``: one published run's figures in the formats continuous-benchmarking
services read, so a maintainer's CI can send them on without glue of its own.

One benchmark per group (agent on task). Its measures, each a median (or a share)
over the row's successful episodes, with the median's 95% interval where the run has one
(order statistics, ``stats.median_interval``):

- ``cpu-time``: CPU time per episode (user + system, the episode's own process tree);
- ``latency`` and ``latency-p95``: wall-clock time per episode, median and 95th percentile;
- ``instructions``: instructions per episode (runs made with ``--instructions``; their time
  figures, inflated by Valgrind, are left out);
- ``artifact-bytes``: TraceCore run-artifact bytes per episode (mean);
- ``success-rate``: the share of the row's episodes that succeeded.

Formats: ``bmf`` (Bencher Metric Format: times in nanoseconds, as Bencher's own ``latency``
measure) and ``github-action-benchmark`` (its ``customSmallerIsBetter`` list: times in
milliseconds, and the failure rate in place of the success rate, so smaller is better for
every entry).
"""

from __future__ import annotations

import statistics
from collections import defaultdict

import msgspec

from tracecore_perf.errors import UsageError
from tracecore_perf.published import PublishedRun
from tracecore_perf.stats import distribution, median_interval

FORMATS = ("bmf", "github-action-benchmark")


class Measure(msgspec.Struct, kw_only=True):
    """One figure of one benchmark, in base units (seconds, instructions, bytes, a share)."""

    slug: str
    label: str
    kind: str  # "time", "count", "bytes" or "share": how each format scales it
    value: float
    lower: float | None = None  # the value's 95% interval, where the run has one
    upper: float | None = None
    episodes: int = 0  # how many episodes it is made of


class Benchmark(msgspec.Struct, kw_only=True):
    name: str  # "<agent> on <task_ref>"
    episodes: int
    succeeded: int
    measures: list[Measure]


def _median(slug: str, label: str, kind: str, values: list[float]) -> Measure:
    interval = median_interval(values)
    return Measure(
        slug=slug,
        label=label,
        kind=kind,
        value=statistics.median(values),
        lower=interval[0] if interval else None,
        upper=interval[1] if interval else None,
        episodes=len(values),
    )


def figures(run: PublishedRun) -> list[Benchmark]:
    """The run's benchmarks, one per group, in the order the series first has each. Raises
    UsageError for a run whose figures are not the harness's own (tainted) or cover only part
    of it."""
    manifest, summary = run.manifest(), run.summary()
    if summary.status == "tainted" or not summary.integrity.clean:
        raise UsageError(f"run {run.stamp} is tainted (its evidence was tampered with): nothing to export")
    if summary.status not in ("complete", "resumed", "failed"):
        raise UsageError(f"run {run.stamp} is {summary.status}: its figures cover only part of it; finish it first")
    grouped = defaultdict(list)
    for row in run.series():
        grouped[(row.agent, row.task_ref)].append(row)
    out = []
    for (agent, task_ref), members in grouped.items():
        ok = [r for r in members if r.success]
        measures = []
        if ok and not manifest.settings.instructions:  # under Valgrind, time is Valgrind's
            measures.append(_median("cpu-time", "CPU time per episode", "time", [r.cpu_s for r in ok]))
            measures.append(_median("latency", "wall-clock time per episode (median)", "time", [r.wall_clock_s for r in ok]))
            p95 = distribution(r.wall_clock_s for r in ok).p95
            measures.append(Measure(slug="latency-p95", label="wall-clock time per episode (p95)", kind="time", value=p95))
        counts = [float(r.instructions) for r in ok if r.instructions is not None]
        if counts:
            measures.append(_median("instructions", "instructions per episode", "count", counts))
        if ok:
            mean_bytes = statistics.fmean(r.artifact_bytes for r in ok)
            measures.append(Measure(slug="artifact-bytes", label="artifact bytes per episode", kind="bytes", value=mean_bytes))
        share = len(ok) / len(members)
        measures.append(Measure(slug="success-rate", label="success rate", kind="share", value=share, episodes=len(members)))
        out.append(Benchmark(name=f"{agent} on {task_ref}", episodes=len(members), succeeded=len(ok), measures=measures))
    return out


def bmf(run: PublishedRun) -> dict:
    """Bencher Metric Format: ``{benchmark: {measure: {value, lower_value, upper_value}}}``."""
    scale = {"time": 1e9, "count": 1.0, "bytes": 1.0, "share": 1.0}
    out: dict[str, dict] = {}
    for bench in figures(run):
        metrics = {}
        for m in bench.measures:
            metric = {"value": round(m.value * scale[m.kind], 3)}
            if m.lower is not None and m.upper is not None:
                metric |= {"lower_value": round(m.lower * scale[m.kind], 3), "upper_value": round(m.upper * scale[m.kind], 3)}
            metrics[m.slug] = metric
        out[bench.name] = metrics
    return out


def github_action_benchmark(run: PublishedRun) -> list[dict]:
    """github-action-benchmark's ``customSmallerIsBetter``: ``[{name, unit, value, range, extra}]``."""
    manifest = run.manifest()
    where = (
        f"machine {manifest.machine_id()}, Python {manifest.interpreter.python_version}, "
        f"TraceCore {manifest.interpreter.tracecore_version}, run {run.stamp}"
    )
    units = {"time": ("ms", 1e3), "count": ("instructions", 1.0), "bytes": ("bytes", 1.0), "share": ("%", 100.0)}
    out = []
    for bench in figures(run):
        for m in bench.measures:
            unit, scale = units[m.kind]
            value, label = m.value * scale, m.label
            if m.slug == "success-rate":  # smaller is better for every entry
                value, label = (1 - m.value) * scale, "failure rate"
            entry = {"name": f"{bench.name}: {label}", "unit": unit, "value": round(value, 6)}
            extra = f"{m.episodes} episodes" if m.episodes else f"{bench.succeeded} successful episodes"
            if m.lower is not None and m.upper is not None:
                low, high = m.lower * scale, m.upper * scale
                entry["range"] = f"± {max(value - low, high - value):.6g}"
                extra += f"; 95% interval of the median [{low:.6g}, {high:.6g}] {unit}"
            entry["extra"] = f"{extra}; {where}"
            out.append(entry)
    return out


def render(fmt: str, run: PublishedRun) -> str:
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r} (formats: {', '.join(FORMATS)})")
    found = bmf(run) if fmt == "bmf" else github_action_benchmark(run)
    return msgspec.json.format(msgspec.json.encode(found), indent=2).decode() + "\n"
