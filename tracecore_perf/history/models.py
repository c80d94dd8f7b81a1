"""The contracts of the history stage (msgspec Structs): what the store keeps of a published
run, the series read back from it, and the change points found on them."""

from __future__ import annotations

from typing import Literal

import msgspec

Direction = Literal["slower", "faster"]
Order = Literal["time", "label"]
RUN_WIDE = "*"
"""``agent`` and ``task_ref`` of a run-wide series (throughput, the harness's and workers' memory)."""


class Metric(msgspec.Struct, frozen=True, kw_only=True):
    """One series kept per run: ``per_group`` per (agent, task_ref), else run-wide; ``worse``
    says which way is a regression ("slower" in the output)."""

    name: str
    title: str
    unit: Literal["s", "bytes", "ratio", "eps", "instructions"]
    per_group: bool
    worse: Literal["higher", "lower"] = "higher"
    # the smallest change reported, unless --min-change says otherwise (None: Settings'
    # default); instruction counts repeat to ~0.01%, so a far smaller step is a real one
    min_change: float | None = None


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            name="instructions", title="median instructions per episode", unit="instructions", per_group=True, min_change=0.005
        ),
        Metric(name="cpu_s", title="median CPU per episode", unit="s", per_group=True),
        Metric(name="wall_clock_s", title="median wall clock", unit="s", per_group=True),
        Metric(name="wall_clock_p95_s", title="p95 wall clock", unit="s", per_group=True),
        Metric(name="success_rate", title="success rate", unit="ratio", per_group=True, worse="lower"),
        Metric(name="artifact_bytes", title="serialized artifact bytes per episode", unit="bytes", per_group=True),
        Metric(name="episode_rss_bytes", title="peak episode RSS", unit="bytes", per_group=True),
        Metric(name="throughput_eps", title="run throughput", unit="eps", per_group=False, worse="lower"),
        Metric(name="harness_rss_bytes", title="harness peak RSS", unit="bytes", per_group=False),
        Metric(name="workers_rss_bytes", title="workers' peak RSS (sampled)", unit="bytes", per_group=False),
    )
}


class RunRecord(msgspec.Struct, kw_only=True):
    """One published run in the store."""

    stamp: str
    generated_at: str
    label: str | None
    status: str
    episodes: int
    workers: int
    isolation: str
    warmup: int | None
    tracecore_version: str
    python_version: str
    # the machine it ran on (Manifest.machine_id): series are kept apart by it; a TraceCore or
    # Python upgrade stays in one series and is named at the change it causes
    machine_id: str
    cpu_model: str
    throughput_eps: float | None
    harness_rss_bytes: int | None
    workers_rss_bytes: int | None
    source_dir: str  # where the run's artifacts were when it was added (its report may sit there)
    added_at: str = ""
    # made with --instructions: its instructions are kept, its time and episode-memory figures
    # (inflated by Valgrind) are not
    instructions: bool = False


class GroupFigures(msgspec.Struct, kw_only=True):
    """One (agent, task_ref) of one run."""

    stamp: str
    agent: str
    task_ref: str
    episodes: int
    cpu_s: float | None
    wall_clock_s: float | None
    wall_clock_p95_s: float | None
    success_rate: float
    artifact_bytes: float | None
    episode_rss_bytes: int | None
    instructions: float | None = None  # median per successful episode (instruction runs)


class Point(msgspec.Struct, kw_only=True):
    stamp: str
    value: float | None


class Acceptance(msgspec.Struct, kw_only=True):
    """``history accept RUN``: the change points at or before ``stamp`` (in the series' order)
    are accepted, an intended change: listed, marked, never a regression of ``check``."""

    stamp: str
    label: str | None
    reason: str | None
    accepted_at: str


class ChangePoint(msgspec.Struct, kw_only=True):
    """A persistent shift of one series: ``stamp`` is the first run after the change."""

    agent: str
    task_ref: str
    metric: str
    machine_id: str | None
    stamp: str
    index: int  # of that run in the series
    direction: Direction
    before: float  # median of the segment before (back to the previous change point)
    after: float  # median of the segment after (up to the next one)
    ratio: float | None  # after / before (None: a change from 0)
    runs_before: int
    runs_after: int
    coincides_with: list[str] = []  # what else changed between the two runs around it
    accepted: Acceptance | None = None  # the first accepted run at or after it (history accept)


class Series(msgspec.Struct, kw_only=True):
    agent: str
    task_ref: str
    metric: str
    machine_id: str | None  # None when machines are mixed (--mix-machines)
    points: list[Point]
    change_points: list[ChangePoint] = []
    note: str | None = None  # why no change point could be looked for


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    pvalue: float
    permutations: int
    min_change: float  # every metric's, when given (--min-change); else each metric's own
    seed: int
    min_change_given: bool = False
    mix_machines: bool = False
    order: Order = "time"


class History(msgspec.Struct, kw_only=True):
    """What ``history show`` prints as JSON: the runs in order, the series, the change points."""

    database: str
    settings: Settings
    metrics: list[str]
    runs: list[RunRecord]
    series: list[Series]
    change_points: list[ChangePoint]
    acceptances: list[Acceptance] = []  # history accept, in the runs' order


class HistoryVerdict(msgspec.Struct, kw_only=True):
    """``history check``: does the newest run sit on the slower side of a change point?"""

    database: str
    newest: str | None
    metrics: list[str]
    ok: bool
    regressions: list[ChangePoint]
    other_change_points: list[ChangePoint]  # on the newest run's level, not slower ones, or accepted ones
    series_checked: int
    notes: list[str] = []
