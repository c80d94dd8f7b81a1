"""``python -m tracecore_perf compare BASELINE CURRENT``: did the current run get slower,
flakier or heavier than the baseline, per group (agent, task_ref)?

Latency per group is judged on the ratio of medians (current / baseline), on the log scale,
with an uncertainty that has two parts:

- sampling: the bootstrap standard error of each run's log median (episodes resampled);
- drift: how far a whole run's level moves from one run to the next on the same host. Two
  runs of the same code on this host class differ by several per cent even when each run's
  median is known to 1-2 % (measured with ``scripts/validity_bench.py``), so each run is
  given a drift of at least ``--drift`` (a floor), or more when the run itself shows it:
  each run is cut into blocks of consecutive episodes in time, and the spread of the block
  medians beyond what sampling explains is drift the host showed during that very run.

The z-test on the log ratio with both parts gives the p-value (adjusted across rows,
Benjamini-Hochberg) and the interval. A row is faster or slower only when the change is
significant *and* its interval excludes 1 *and* it is larger than the noise floor
(``--noise``); a regression is a slower row whose ratio exceeds 1 + margin. Mann-Whitney U on
the episodes alone is kept in the output (``p_value_episodes``) for reference: it knows
nothing of drift, so on its own it calls identical runs different far too often.

Runs set up differently (workers, isolation, strict spec, scenario rows) are not compared
unless asked to (``--allow-setup-mismatch``): latency under other concurrency or another
isolation is another quantity.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from tracecore_perf import defaults
from tracecore_perf.errors import UsageError
from tracecore_perf.models import HARDWARE_FIELDS, EpisodeEnvironment, EpisodeRow, Manifest, Summary
from tracecore_perf.published import PublishedRun
from tracecore_perf.verdicts.models import (
    Comparison,
    Estimate,
    GroupComparison,
    KernelChange,
    Notice,
    OverallVerdict,
    WarningCode,
)
from tracecore_perf.verdicts.notices import run_notices

METRICS = {
    "wall_clock_s": lambda r: r.wall_clock_s,
    "episode_s": lambda r: r.episode_s,
    "cpu_s": lambda r: r.cpu_s,
    "instructions": lambda r: r.instructions,
}
# instruction comparisons also judge these, from each episode's native twin (defaults.COMPARE_KERNEL)
KERNEL_METRICS = {
    "native_minor_faults": lambda r: r.native_minor_faults,
    "native_sys_s": lambda r: r.native_cpu_sys_s,
}
TIME_METRICS = ("wall_clock_s", "episode_s", "cpu_s")
MIN_EPISODES = 5  # per row and side, successful episodes, before latency is compared
# per row and side, counted episodes before counts are compared: counts repeat to +-0.02%, so
# two (an instruction run's default, --counted-per-row) give the figure and a spread; paired by
# seed when both runs counted at least this many of the same seeds
MIN_COUNTED = 2
BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95
# Blocks in time for the drift a run shows itself: at most MAX_BLOCKS, each of at least
# MIN_BLOCK_EPISODES episodes, and at least MIN_BLOCKS of them (else only the floor applies).
MAX_BLOCKS = 8
MIN_BLOCK_EPISODES = 10
MIN_BLOCKS = 3
# cpu_s by default, instructions when both runs counted them: see defaults.COMPARE and
# defaults.COMPARE_INSTRUCTIONS.
DEFAULTS = defaults.COMPARE


class Settings:
    """What to compare and how strictly. A setting left None takes the metric's default
    (``defaults.COMPARE``, or ``defaults.COMPARE_INSTRUCTIONS`` for instructions); a metric
    left None is instructions when both runs counted them, else ``cpu_s``."""

    def __init__(
        self,
        metric: str | None = None,
        alpha: float | None = None,
        noise: float | None = None,
        margin: float | None = None,
        drift: float | None = None,
    ) -> None:
        self.metric, self.alpha, self.noise, self.margin, self.drift = metric, alpha, noise, margin, drift

    def resolved(self, counted: bool = False) -> Settings:
        """Every setting filled in; ``counted``: both runs counted instructions."""
        metric = self.metric or ("instructions" if counted else DEFAULTS["metric"])
        table = defaults.COMPARE_INSTRUCTIONS if metric == "instructions" else DEFAULTS
        given = {"alpha": self.alpha, "noise": self.noise, "margin": self.margin, "drift": self.drift}
        return Settings(metric, **{key: table[key] if value is None else value for key, value in given.items()})


def _key(row: EpisodeRow) -> tuple[str, str]:
    return row.agent, row.task_ref


def _group(rows: Sequence[EpisodeRow]) -> dict[tuple[str, str], list[EpisodeRow]]:
    groups: dict[tuple[str, str], list[EpisodeRow]] = defaultdict(list)
    for row in rows:
        groups[_key(row)].append(row)
    return groups


class Side:
    """One run's episodes of one group, in the order they started: the log values,
    the bootstrap standard error of their median, and the drift the run showed."""

    def __init__(self, logs: np.ndarray, se: float, drift: float | None, blocks: int) -> None:
        self.logs, self.se, self.drift, self.blocks = logs, se, drift, blocks


def _log_median_se(logs: np.ndarray, rng: np.random.Generator) -> float:
    from scipy import stats  # imported when needed: it is most of the start-up time

    if np.ptp(logs) == 0:
        return 0.0
    boot = stats.bootstrap((logs,), np.median, vectorized=True, n_resamples=BOOTSTRAP_RESAMPLES, method="percentile", rng=rng)
    return float(boot.standard_error)


def within_run_drift(logs: np.ndarray, se: float) -> tuple[float | None, int]:
    """The drift a run shows itself: the standard deviation of its block medians (blocks of
    consecutive episodes in time) beyond what sampling explains. A block of n/B episodes has
    a median about sqrt(B) times as uncertain as the whole run's, so sampling alone gives the
    block medians a variance of B * se^2. None when the run is too short for blocks."""
    blocks = min(MAX_BLOCKS, len(logs) // MIN_BLOCK_EPISODES)
    if blocks < MIN_BLOCKS:
        return None, 0
    medians = np.array([np.median(part) for part in np.array_split(logs, blocks)])
    excess = float(np.var(medians, ddof=1)) - blocks * se**2
    return math.sqrt(max(0.0, excess)), blocks


def side(rows: Sequence[EpisodeRow], metric: str, rng: np.random.Generator) -> Side:
    value = METRICS.get(metric) or KERNEL_METRICS[metric]
    timed = sorted((r for r in rows if r.success and value(r) is not None), key=lambda r: (r.attempt, r.started_s))
    values = np.array([value(r) for r in timed], dtype=float)
    # a zero reading (a clock's resolution) would be -inf on the log scale: the smallest
    # positive reading stands in for it
    positive = values[values > 0]
    floor = float(positive.min()) if len(positive) else 1e-9
    logs = np.log(np.maximum(values, floor))
    se = _log_median_se(logs, rng) if len(logs) >= MIN_EPISODES else 0.0
    drift, blocks = within_run_drift(logs, se)
    return Side(logs, se, drift, blocks)


def _latency(base: Side, cur: Side, settings: Settings) -> tuple[Estimate, Estimate, float, float, float]:
    """(ratio with interval, Hodges-Lehmann shift, p-value, p-value of the episodes alone,
    standard error of the log ratio)."""
    from scipy import stats  # imported when needed: it is most of the start-up time

    d = float(np.median(cur.logs) - np.median(base.logs))
    drift_b = max(settings.drift, base.drift or 0.0)
    drift_c = max(settings.drift, cur.drift or 0.0)
    se = math.sqrt(base.se**2 + cur.se**2 + drift_b**2 + drift_c**2)
    # no spread at all (constant readings, --drift 0): any difference is certain
    p = float(2 * stats.norm.sf(abs(d) / se)) if se > 0 else float(d == 0)
    z = float(stats.norm.ppf(0.5 + CONFIDENCE / 2))
    x, y = np.exp(base.logs), np.exp(cur.logs)
    # Hodges-Lehmann: the median of every pairwise difference current - baseline
    shift = float(np.median(np.subtract.outer(y, x)))
    p_episodes = float(stats.mannwhitneyu(y, x, alternative="two-sided").pvalue)
    return (
        Estimate(
            value=round(math.exp(d), 5),
            low=round(math.exp(d - z * se), 5),
            high=round(math.exp(d + z * se), 5),
            confidence=CONFIDENCE,
        ),
        Estimate(value=round(shift, 6)),
        p,
        p_episodes,
        se,
    )


def _median_or_none(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(b - a, 6)


def _r(value: float | None, digits: int = 5) -> float | None:
    return None if value is None else round(value, digits)


def _counts(rows: Sequence[EpisodeRow]) -> dict[int, int]:
    """Seed -> instructions of the successful, counted episodes (the first of a seed)."""
    counts: dict[int, int] = {}
    for row in rows:
        if row.success and _valid_count(row.instructions):
            counts.setdefault(row.seed, row.instructions)
    return counts


def _valid_count(count: int | None) -> bool:
    """A count is a figure only as one process's instructions: positive, within 63 bits."""
    return count is not None and 0 < count < 2**63


def uncounted_rows(rows: Sequence[EpisodeRow], label: str) -> list[str]:
    """Each group of ``rows`` with episodes whose count is no figure (the worker found
    it zeroed, switched off or replaced: ``uncounted:``; or a success without a valid count),
    one phrase naming it and why. An episode left uncounted by design (``native_only``: past
    its row's ``--counted-per-row``) is none of them."""
    found = []
    for (agent, task_ref), group in _group(rows).items():
        bad = [
            r
            for r in group
            if (r.error or "").startswith("uncounted:") or (r.success and not r.native_only and not _valid_count(r.instructions))
        ]
        if bad:
            why = bad[0].error or f"count {bad[0].instructions}"
            found.append(f"the {label}'s {agent} on {task_ref} ({len(bad)} of {len(group)} episodes: {why})")
    return found


def _instructions(
    base: Sequence[EpisodeRow], cur: Sequence[EpisodeRow], rng: np.random.Generator
) -> tuple[Estimate, float | None, float | None, bool, int, int]:
    """Instruction counts: the ratio of medians with its interval. Counts do not drift with
    the host, so the only uncertainty is which episodes were run: where both runs counted the
    same seeds (at least MIN_COUNTED of them), episodes are paired by seed and the pairs are
    resampled together (the same work on both sides, so only the change shows); otherwise
    each side is resampled on its own. Returns (ratio, p-value, standard error of the log
    ratio, paired, n base, n current)."""
    from scipy import stats  # imported when needed: it is most of the start-up time

    b, c = _counts(base), _counts(cur)
    seeds = sorted(b.keys() & c.keys())
    paired = len(seeds) >= MIN_COUNTED
    if paired:
        b, c = {s: b[s] for s in seeds}, {s: c[s] for s in seeds}
    if len(b) < MIN_COUNTED or len(c) < MIN_COUNTED:
        return Estimate(value=None), None, None, paired, len(b), len(c)
    if paired:
        x, y = np.log([b[s] for s in seeds]), np.log([c[s] for s in seeds])
        picks = rng.integers(0, len(seeds), size=(BOOTSTRAP_RESAMPLES, len(seeds)))
        se = float(np.std(np.median(y[picks], axis=1) - np.median(x[picks], axis=1), ddof=1))
    else:
        x, y = np.log(list(b.values())), np.log(list(c.values()))
        se = math.sqrt(_log_median_se(x, rng) ** 2 + _log_median_se(y, rng) ** 2)
    d = float(np.median(y) - np.median(x))
    p = float(2 * stats.norm.sf(abs(d) / se)) if se > 0 else float(d == 0)
    z = float(stats.norm.ppf(0.5 + CONFIDENCE / 2))
    ratio = Estimate(
        value=round(math.exp(d), 6),
        low=round(math.exp(d - z * se), 6),
        high=round(math.exp(d + z * se), 6),
        confidence=CONFIDENCE,
    )
    return ratio, p, se, paired, len(b), len(c)


def twins_failed(rows: Sequence[EpisodeRow], label: str) -> list[Notice]:
    """A loud notice where counted episodes' native twins failed: the same deterministic
    episode, run natively, did not finish, so the kernel's work is judged without them (and
    not at all for a row left with too few): an agent that fails only natively would
    otherwise blind that check unseen."""
    failed = [r for r in rows if r.native_error is not None]
    if not failed:
        return []
    groups = sorted({f"{r.agent} on {r.task_ref}" for r in failed})
    return [
        Notice(
            code=WarningCode.NATIVE_TWINS_FAILED,
            message=f"NATIVE TWINS FAILED: in the {label}, {len(failed)} of {len(rows)} episodes' native twins gave no "
            f"figures ({'; '.join(groups[:3])}{'; ...' if len(groups) > 3 else ''}: {failed[0].native_error}); "
            "the kernel's work is judged without them",
        )
    ]


def _median_count(rows: Sequence[EpisodeRow]) -> float | None:
    counts = list(_counts(rows).values())
    return float(np.median(counts)) if counts else None


def _kernel(base: list[EpisodeRow], cur: list[EpisodeRow], rng: np.random.Generator) -> list[KernelChange]:
    """Instruction comparisons: each kernel metric both runs' native twins give for enough
    episodes, judged as a time metric is (log ratio of medians, sampling and drift), against
    its own noise floor and margin."""
    found = []
    for metric, table in defaults.COMPARE_KERNEL.items():
        b, c = side(base, metric, rng), side(cur, metric, rng)
        if len(b.logs) < MIN_EPISODES or len(c.logs) < MIN_EPISODES:
            continue
        settings = Settings(metric, table["alpha"], table["noise"], table["margin"], table["drift"])
        ratio, _, p, _, _ = _latency(b, c, settings)
        value, low, high = ratio.value or 1.0, ratio.low or 0.0, ratio.high or math.inf
        verdict = "no change"
        if p < settings.alpha and low > 1 and value >= 1 + settings.noise:
            verdict = "more"
        elif p < settings.alpha and high < 1 and value <= 1 - settings.noise:
            verdict = "less"
        found.append(
            KernelChange(
                metric=metric,
                baseline_median=round(float(np.exp(np.median(b.logs))), 6),
                current_median=round(float(np.exp(np.median(c.logs))), 6),
                ratio=ratio,
                p_value=p,
                verdict=verdict,
                regression=verdict == "more" and bool(table["gates"]) and value > 1 + settings.margin,
            )
        )
    return found


def _row(key: tuple[str, str], base: list[EpisodeRow], cur: list[EpisodeRow], settings: Settings, seed: int) -> GroupComparison:
    from scipy import stats  # imported when needed: it is most of the start-up time

    rng = np.random.default_rng(seed)
    paired = None
    if settings.metric == "instructions":
        b = c = None
        ratio, p, se, paired, n_base, n_cur = _instructions(base, cur, rng)
        kernel = _kernel(base, cur, rng)
        comparable = ratio.value is not None
        shift, p_episodes = Estimate(value=None), None
        x = y = np.array([])
    else:
        kernel = []
        b, c = side(base, settings.metric, rng), side(cur, settings.metric, rng)
        x, y = np.exp(b.logs), np.exp(c.logs)
        n_base, n_cur = len(x), len(y)
        comparable = len(x) >= MIN_EPISODES and len(y) >= MIN_EPISODES
        se = p_episodes = None
        if comparable:
            ratio, shift, p, p_episodes, se = _latency(b, c, settings)
        else:
            ratio, shift, p = Estimate(value=None), Estimate(value=None), None
    ok_base, ok_cur = sum(r.success for r in base), sum(r.success for r in cur)
    success_p = float(stats.fisher_exact([[ok_cur, len(cur) - ok_cur], [ok_base, len(base) - ok_base]]).pvalue)
    return GroupComparison(
        agent=key[0],
        task_ref=key[1],
        metric=settings.metric,
        baseline_n=n_base,
        current_n=n_cur,
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
            _median_or_none([r.cpu_s for r in base]),
            _median_or_none([r.cpu_s for r in cur]),
        ),
        max_rss_bytes_median_delta=_delta(
            _median_or_none([r.max_rss_bytes for r in base]), _median_or_none([r.max_rss_bytes for r in cur])
        ),
        regression=False,
        se_log_ratio=_r(se, 7),
        sampling_se=[_r(b.se), _r(c.se)] if comparable and b and c else None,
        drift_within=[_r(b.drift), _r(c.drift)] if comparable and b and c else None,
        blocks=[b.blocks, c.blocks] if b and c else None,
        p_value_episodes=p_episodes,
        baseline_median_instructions=_median_count(base),
        current_median_instructions=_median_count(cur),
        paired=paired,
        kernel=kernel,
    )


def _decide(rows: list[GroupComparison], settings: Settings) -> None:
    """Adjust p-values across rows, then call each row faster, slower or no change; in an
    instruction comparison, a row whose kernel work grew past its margin is a regression
    even where its count did not move (what a user pays did)."""
    from scipy import stats  # imported when needed: it is most of the start-up time

    tested = [row for row in rows if row.p_value is not None]
    adjusted = stats.false_discovery_control([row.p_value for row in tested], method="bh") if tested else []
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
    for row in rows:
        if any(k.regression for k in row.kernel):
            row.regression = True
            if row.verdict == "no change":
                row.verdict = "slower"


def compare_rows(base_rows: Sequence[EpisodeRow], cur_rows: Sequence[EpisodeRow], settings: Settings) -> list[GroupComparison]:
    """Every group both runs have, judged (the statistics without the runs' files: the
    tests feed it rows with a known answer)."""
    settings = settings.resolved()
    base_g, cur_g = _group(base_rows), _group(cur_rows)
    shared = [key for key in base_g if key in cur_g]
    rows = [_row(key, base_g[key], cur_g[key], settings, seed=n) for n, key in enumerate(shared)]
    _decide(rows, settings)
    return rows


def setup_differences(base: Manifest, cur: Manifest) -> list[str]:
    """How two runs were set up differently, in words; empty when they compare like with like."""
    differences = [
        f"{label} {getattr(base.settings, field)} vs {getattr(cur.settings, field)}"
        for field, label in (
            ("workers", "workers"),
            ("isolation", "isolation"),
            ("strict_spec", "strict spec"),
            ("sandbox", "sandbox"),  # two more forks and the namespaces' set-up per episode
        )
        if getattr(base.settings, field) != getattr(cur.settings, field)
    ]
    rows_base = [(r.agent, r.task_ref, r.seed) for r in base.scenario]
    rows_cur = [(r.agent, r.task_ref, r.seed) for r in cur.scenario]
    if rows_base != rows_cur:
        only_base = [r for r in rows_base if r not in rows_cur]
        only_cur = [r for r in rows_cur if r not in rows_base]
        if only_base or only_cur:
            which, (agent, task, seed) = ("baseline", only_base[0]) if only_base else ("current run", only_cur[0])
            example = f"; only the {which} has {agent} on {task} seed {seed}"
        else:
            example = "; the same rows in another order"
        differences.append(f"scenario rows {len(rows_base)} vs {len(rows_cur)}{example}")
    return differences


class SetupMismatch(UsageError):
    """Two runs set up differently, compared without --allow-setup-mismatch."""


def runtime_differences(base: Manifest, cur: Manifest) -> list[str]:
    """What an instruction count depends on beyond the code, where two runs differ: the
    Python build, TraceCore's version, Valgrind's version, the hash seed.

    A field is compared only where both runs record it: a run published before
    ``python_build`` existed is held to the other by Python version alone (never its version
    against the other's full build string, which differ while saying the same Python), and a
    field either run lacks (empty) is no difference. So a difference always shows two
    different values."""
    a, b = base.interpreter, cur.interpreter
    both_builds = bool(a.python_build and b.python_build)
    pairs: list[tuple[str, object, object]] = [
        ("Python", *((a.python_build, b.python_build) if both_builds else (a.python_version, b.python_version))),
        ("TraceCore", a.tracecore_version, b.tracecore_version),
    ]
    if base.counting is not None and cur.counting is not None:
        pairs += [
            ("Valgrind", base.counting.valgrind_version, cur.counting.valgrind_version),
            ("hash seed", base.counting.hash_seed, cur.counting.hash_seed),
        ]
    return [f"{label} {x} vs {y}" for label, x, y in pairs if x not in ("", None) and y not in ("", None) and x != y]


def tainted_reason(run: PublishedRun) -> str | None:
    """Why ``run``'s figures are not the harness's own (its summary or manifest says
    ``tainted``, or its integrity block is not clean), in words; None for a clean run."""
    summary = run.summary()
    integrity = summary.integrity
    if summary.status != "tainted" and run.manifest().status != "tainted" and integrity.clean:
        return None
    problems = "; ".join(integrity.problems[:2]) or f"published as {summary.status}"
    return f"its evidence was tampered with: {problems}"


class TaintedRun(UsageError):
    """A tainted run compared without --allow-tainted."""


# The distribution under test: its version is a runtime difference (``runtime_differences``),
# what the comparison is about; how it was installed is the environment's.
UNDER_TEST = "tracecore"
INSTALLERS = frozenset({"pip", "setuptools", "wheel"})  # in every venv, at the version it was made with


def environment_differences(a: EpisodeEnvironment | None, b: EpisodeEnvironment | None) -> list[str]:
    """How the two runs' episode interpreters were installed differently, in words, one per
    difference: a distribution on one side only, at another version (TraceCore's own version
    aside: that is the runtime), installed in place (editable) on one side, TraceCore from
    another kind of source (an index, a local tree, a VCS URL), another implementation.
    The installers every environment carries at whatever version it was made with (pip,
    setuptools, wheel: no episode loads them) are not differences. Empty when they agree, or
    when either run predates the record."""
    if a is None or b is None:
        return []
    out = []
    if a.implementation != b.implementation:
        out.append(f"implementation {a.implementation} vs {b.implementation}")
    for name in sorted((set(a.distributions) | set(b.distributions)) - INSTALLERS):
        va, vb = a.distributions.get(name), b.distributions.get(name)
        if va is None or vb is None:
            out.append(f"{name} {va or vb} only in the {'current run' if va is None else 'baseline'}")
        elif va != vb and name != UNDER_TEST:
            out.append(f"{name} {va} vs {vb}")
    for name in sorted(set(a.editable) ^ set(b.editable)):
        out.append(f"{name} editable in the {'baseline' if name in a.editable else 'current run'} only")
    kind_a, kind_b = (source.split(" ", 1)[0] for source in (a.tracecore_source, b.tracecore_source))
    if kind_a != kind_b:
        out.append(f"TraceCore installed from {kind_a or 'nowhere'} vs {kind_b or 'nowhere'}")
    return out


def environment_mismatch(differences: list[str]) -> SetupMismatch:
    """The refusal of an instruction verdict between interpreters installed differently."""
    return SetupMismatch(
        f"the episode interpreters are installed differently ({'; '.join(differences)}): an instruction count "
        "would measure how each side was installed as well as the code; build both sides the same way "
        "(`continuous` does), or pass --allow-env-difference"
    )


def _check_metric(metric: str, base: Manifest, cur: Manifest) -> None:
    """Time is not comparable between a run under Valgrind and a native one; instructions
    need both runs counted."""
    counted = base.settings.instructions, cur.settings.instructions
    if metric in TIME_METRICS and counted[0] != counted[1]:
        which = "baseline" if counted[0] else "current run"
        raise UsageError(
            f"the {which} ran under Valgrind (--instructions) and the other did not: {metric} is not comparable "
            "between them (Valgrind inflates time); compare two native runs, or two instruction runs"
        )
    if metric == "instructions" and not all(counted):
        which = "baseline" if not counted[0] else "current run"
        raise UsageError(f"--metric instructions needs two runs made with --instructions; the {which} counted none")
    mixed = [label for label, manifest in (("baseline", base), ("current run", cur)) if ran_natively_too(manifest)]
    if metric in TIME_METRICS and mixed:
        raise UsageError(
            f"the {mixed[0]} timed its counted episodes under Valgrind and the others natively (--counted-per-row): "
            f"its {metric} mixes the two; compare two native runs for time, or these on instructions"
        )


def ran_natively_too(manifest: Manifest) -> bool:
    """An instruction run with episodes past ``--counted-per-row``, run only natively: its time
    figures mix Valgrind's and native ones."""
    settings = manifest.settings
    rows = len(manifest.scenario)
    return settings.instructions and settings.counted_per_row > 0 and settings.episodes > settings.counted_per_row * rows


def refresh_command(manifest: Manifest) -> str:
    """The run that records a new baseline set up as ``manifest``'s, on today's runtime."""
    settings = manifest.settings
    flags = [f"--episodes {settings.episodes}", f"--workers {settings.workers}"]
    flags += [flag for flag, on in (("--strict-spec", settings.strict_spec), ("--instructions", settings.instructions)) if on]
    return "python -m tracecore_perf " + " ".join(flags)


def overall_verdict(rows: list[GroupComparison]) -> OverallVerdict:
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
    allow_setup_mismatch: bool = False,
    same_runtime: bool = False,
    allow_env_difference: bool = False,
    allow_tainted: bool = False,
) -> Comparison:
    """``interpreter_ab``: the two runs are meant to differ in Python / TraceCore (``ab``), so
    only a difference in the machine itself is a mismatch. Runs set up differently raise
    :class:`SetupMismatch` unless ``allow_setup_mismatch`` (then it is a warning).
    ``same_runtime`` (a CI gate, comparing code with code): runs whose Python build,
    TraceCore or Valgrind differ raise :class:`SetupMismatch`, naming the run that records
    a new baseline. An instruction verdict between episode interpreters installed
    differently (``environment_differences``) raises :class:`SetupMismatch` unless
    ``allow_env_difference`` (then it is a warning): the count would measure the install.
    A tainted run (its evidence tampered with) raises :class:`TaintedRun` unless
    ``allow_tainted`` (then a TAINTED RUN warning): its figures are not the harness's own."""
    tainted = [
        (label, run, why) for label, run in (("baseline", baseline), ("current run", current)) if (why := tainted_reason(run))
    ]
    if tainted and not allow_tainted:
        label, run, why = tainted[0]
        raise TaintedRun(
            f"the {label} {run.stamp} is tainted ({why}): no verdict is drawn from tampered evidence; "
            "rerun it, or pass --allow-tainted to compare it anyway, with a warning"
        )
    base_m, cur_m = baseline.manifest(), current.manifest()
    settings = (settings or Settings()).resolved(counted=base_m.settings.instructions and cur_m.settings.instructions)
    _check_metric(settings.metric, base_m, cur_m)
    moved = runtime_differences(base_m, cur_m)
    if same_runtime and moved:
        raise SetupMismatch(
            f"the baseline {base_m.stamp} no longer matches this runtime ({'; '.join(moved)}): "
            f"record a new baseline with it: {refresh_command(base_m)}"
        )
    installed = environment_differences(base_m.interpreter.environment, cur_m.interpreter.environment)
    if installed and settings.metric == "instructions" and not allow_env_difference:
        raise environment_mismatch(installed)
    differing_setup = setup_differences(base_m, cur_m)
    if differing_setup and not allow_setup_mismatch:
        raise SetupMismatch(
            f"the runs were set up differently ({'; '.join(differing_setup)}): latency is not comparable; "
            "compare like with like, or pass --allow-setup-mismatch"
        )
    base_rows, cur_rows = baseline.series(), current.series()
    base_s, cur_s = baseline.summary(), current.summary()
    base_g, cur_g = _group(base_rows), _group(cur_rows)
    if settings.metric == "instructions":
        uncounted = uncounted_rows(base_rows, "baseline") + uncounted_rows(cur_rows, "current run")
        if uncounted:
            raise UsageError(f"no instruction verdict where a count is no figure: {'; '.join(uncounted[:4])}")
    rows = compare_rows(base_rows, cur_rows, settings)

    notices: list[Notice] = [
        Notice(
            code=WarningCode.TAINTED_RUN,
            message=f"TAINTED RUN: the {label} {run.stamp} is tainted ({why}); compared anyway (--allow-tainted): "
            "its figures are not the harness's own",
        )
        for label, run, why in tainted
    ]
    machine_ids = [base_m.machine_id(), cur_m.machine_id()]
    match = machine_ids[0] == machine_ids[1]
    if not match:
        differing = [k for k in HARDWARE_FIELDS if base_m.machine_class_fields.get(k) != cur_m.machine_class_fields.get(k)]
        notices.append(
            Notice(
                code=WarningCode.MACHINE_CLASS_MISMATCH,
                message=f"DIFFERENT MACHINES: baseline ran on machine {machine_ids[0]}, current on {machine_ids[1]} "
                f"(differ in {', '.join(differing) or 'fingerprint'}); latency differences may be the machines, not the code",
            )
        )
    if differing_setup:
        notices.append(
            Notice(
                code=WarningCode.SETUP_MISMATCH,
                message=f"SET-UP MISMATCH: the runs were set up differently ({'; '.join(differing_setup)}); "
                "latency differences may be the set-up, not the code",
            )
        )
    if moved and not interpreter_ab:  # what ab is meant to vary
        figures = "instruction counts" if settings.metric == "instructions" else "figures"
        notices.append(
            Notice(
                code=WarningCode.RUNTIME_MISMATCH,
                message=f"RUNTIME MISMATCH: {'; '.join(moved)}; {figures} move with the runtime as well as with the code",
            )
        )
    if installed:
        notices.append(
            Notice(
                code=WarningCode.ENVIRONMENT_MISMATCH,
                message=f"ENVIRONMENT MISMATCH: {'; '.join(installed)}; figures move with what is installed, "
                "and how, as well as with the code",
            )
        )
    if settings.metric in TIME_METRICS and base_m.settings.instructions and cur_m.settings.instructions:
        notices.append(
            Notice(
                code=WarningCode.TIME_UNDER_VALGRIND,
                message=f"both runs ran under Valgrind (--instructions): their {settings.metric} is inflated by it; "
                "compare them on instructions, or compare two native runs for time",
            )
        )
    for label, manifest, summary in (("baseline run", base_m, base_s), ("current run", cur_m, cur_s)):
        notices += run_notices(manifest, summary.episodes, label=label, time_matters=settings.metric != "instructions")
    if settings.metric == "instructions":
        notices += twins_failed(base_rows, "baseline run") + twins_failed(cur_rows, "current run")
    if not rows:
        notices.append(
            Notice(
                code=WarningCode.NO_SHARED_ROWS,
                message="the runs share no group (agent, task_ref): nothing to compare group by group",
            )
        )

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
        drift=settings.drift,
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
        machine_ids=machine_ids,
        setup_match=not differing_setup,
        setup_differences=differing_setup,
        notices=notices,
    )
