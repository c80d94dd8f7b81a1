"""compare's statistics on series built by hand, where the answer is known: drawn from fixed
distributions with a fixed random seed, so every verdict here is the same on every run."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from runs import row

from tracecore_perf.verdicts.compare import Settings, compare_rows, within_run_drift

N = 120


def episodes(cpu: np.ndarray, *, agent: str = "a.py") -> list:
    """One run's rows: episode i started at i * 30 ms, with ``cpu[i]`` seconds of CPU time."""
    return [
        row(i, agent=agent, started_s=i * 0.03, cpu_user_s=float(c) * 0.7, cpu_sys_s=float(c) * 0.3, wall=float(c) * 2)
        for i, c in enumerate(cpu)
    ]


def lognormal(seed: int, median: float = 0.02, sigma: float = 0.2, n: int = N) -> np.ndarray:
    return median * np.exp(np.random.default_rng(seed).normal(0, sigma, n))


def test_two_runs_from_the_same_distribution_are_no_change():
    (result,) = compare_rows(episodes(lognormal(1)), episodes(lognormal(2)), Settings())
    assert result.verdict == "no change" and not result.regression
    assert result.ratio.low < 1 < result.ratio.high
    assert result.blocks == [8, 8]  # 120 episodes: eight blocks of 15 in time


def test_half_again_the_work_is_a_regression_and_the_reverse_is_faster():
    base, heavy = lognormal(1), lognormal(2, median=0.03)
    (slower,) = compare_rows(episodes(base), episodes(heavy), Settings())
    assert slower.verdict == "slower" and slower.regression and slower.ratio.low > 1.1
    (faster,) = compare_rows(episodes(heavy), episodes(base), Settings())
    assert faster.verdict == "faster" and not faster.regression and faster.ratio.high < 1


def test_a_wide_margin_turns_the_regression_into_a_slower_row():
    (result,) = compare_rows(episodes(lognormal(1)), episodes(lognormal(2, median=0.03)), Settings(margin=0.8))
    assert result.verdict == "slower" and not result.regression


def test_a_small_shift_the_episodes_alone_call_significant_is_within_the_drift_floor():
    """4% slower with 2,000 tight episodes a side: Mann-Whitney on the episodes is sure, but two
    runs on this host class differ by more than that with no change at all."""
    base, cur = lognormal(1, sigma=0.05, n=2000), lognormal(2, median=0.0208, sigma=0.05, n=2000)
    (result,) = compare_rows(episodes(base), episodes(cur), Settings())
    assert result.p_value_episodes < 1e-6
    assert result.verdict == "no change" and result.p_value > 0.5
    # without a floor (--drift 0) the same data is "no change" only for the noise floor's sake
    (bare,) = compare_rows(episodes(base), episodes(cur), Settings(drift=0.0, noise=0.0))
    assert bare.verdict == "slower" and bare.p_value < 1e-6


def test_a_run_that_drifts_within_itself_widens_its_own_interval():
    """The current run's level wanders from block to block (sd 20% between blocks of 15): that
    drift is measured and carried into the verdict; a 30% change is then no longer certain."""
    rng = np.random.default_rng(7)
    steady = lognormal(1)
    offsets = np.repeat(rng.normal(0, 0.2, 8), N // 8)
    wandering = lognormal(2, median=0.026) * np.exp(offsets)
    (calm,) = compare_rows(episodes(steady), episodes(lognormal(3, median=0.026)), Settings())
    (drifting,) = compare_rows(episodes(steady), episodes(wandering), Settings())
    assert calm.verdict == "slower" and calm.drift_within[1] < 0.05
    assert drifting.drift_within[1] > 0.1
    assert drifting.se_log_ratio > 1.5 * calm.se_log_ratio
    assert drifting.verdict == "no change"


@pytest.mark.parametrize("sd", [0.0, 0.1, 0.3])
def test_within_run_drift_recovers_a_known_block_offset(sd):
    """Blocks offset by a known spread, episodes inside a block with a tiny spread: the excess
    over sampling is the offsets' spread."""
    rng = np.random.default_rng(11)
    logs = np.repeat(rng.normal(0, sd, 8) if sd else np.zeros(8), 50) + rng.normal(0, 0.001, 400)
    drift, blocks = within_run_drift(logs, se=0.0001)
    assert blocks == 8
    assert drift == pytest.approx(sd, abs=0.25 * sd + 0.005)


def test_too_few_episodes_for_blocks_use_the_floor_alone():
    drift, blocks = within_run_drift(np.zeros(29), se=0.01)
    assert drift is None and blocks == 0
    (result,) = compare_rows(episodes(lognormal(1, n=24)), episodes(lognormal(2, n=24)), Settings())
    assert result.drift_within == [None, None] and result.se_log_ratio >= (2 * 0.05**2) ** 0.5


def test_rows_are_judged_apart_and_adjusted_together():
    base = episodes(lognormal(1)) + episodes(lognormal(2), agent="b.py")
    cur = episodes(lognormal(3)) + episodes(lognormal(4, median=0.04), agent="b.py")
    by_agent = {r.agent: r for r in compare_rows(base, cur, Settings())}
    assert by_agent["a.py"].verdict == "no change" and by_agent["b.py"].regression
    assert all(r.p_adjusted >= r.p_value for r in by_agent.values())


def test_too_few_successful_episodes_are_not_comparable():
    few = [row(i, success=False) for i in range(10)] + episodes(lognormal(1, n=4))
    (result,) = compare_rows(few, episodes(lognormal(2)), Settings())
    assert result.verdict == "not comparable" and result.p_value is None


# --- the kernel's share, beside instruction counts --------------------------------------


COUNTS = Settings(metric="instructions")


def counted(faults: np.ndarray, sys_s: np.ndarray, *, count: int = 80_000_000) -> list:
    """One instruction run's rows: the same count every episode (counts repeat), and each
    episode's native twin's minor faults and system time."""
    return [
        row(i, started_s=i * 0.03, instructions=count + i % 3, native_minor_faults=int(f), native_cpu_sys_s=float(s))
        for i, (f, s) in enumerate(zip(faults, sys_s, strict=True))
    ]


def faults(seed: int, median: float = 1300, n: int = 24) -> np.ndarray:
    return np.round(median * np.exp(np.random.default_rng(seed).normal(0, 0.005, n)))


def test_identical_code_moves_neither_the_count_nor_the_kernel():
    (result,) = compare_rows(counted(faults(1), lognormal(3, 0.005, n=24)), counted(faults(2), lognormal(4, 0.005, n=24)), COUNTS)
    assert result.metric == "instructions" and result.verdict == "no change" and not result.regression
    assert [k.metric for k in result.kernel] == ["native_minor_faults", "native_sys_s"]
    assert all(k.verdict == "no change" and not k.regression for k in result.kernel)


def test_work_moved_into_the_kernel_fails_the_row_though_the_count_did_not_move():
    """10% more page faults for the same count (copy-on-write, a stat on every file access):
    a regression of the row, said in the text the gate prints."""
    (result,) = compare_rows(
        counted(faults(1), lognormal(3, 0.005, n=24)), counted(faults(2, median=1430), lognormal(4, 0.005, n=24)), COUNTS
    )
    assert result.ratio.value == pytest.approx(1.0, abs=1e-4)  # the count did not move
    (moved,) = [k for k in result.kernel if k.metric == "native_minor_faults"]
    assert moved.verdict == "more" and moved.regression and moved.ratio.value == pytest.approx(1.1, rel=0.01)
    assert result.regression and result.verdict == "slower"
    from tracecore_perf.export.text import _comparison  # noqa: PLC0415 - the text the gate prints

    comparison = SimpleNamespace(
        baseline="b", current="c", metric="instructions", verdict="slower", notices=[], machine_ids=[], machine_class_match=False,
        drift=0, alpha=0.01, noise=0.002, margin=0.01, rows=[result], baseline_only=[], current_only=[],
        throughput_eps_baseline=None, throughput_eps_current=None, throughput_delta=None, success_rate_delta=None,
        resource_deltas={},
    )  # fmt: skip
    text = "\n".join(_comparison(comparison))
    assert "a.py on filesystem_hidden_config@1: REGRESSION slower" in text and "REGRESSION more" in text
    assert f"minor faults {moved.baseline_median:,.0f} -> {moved.current_median:,.0f}" in text
    from tracecore_perf.export import _comparison_cases  # noqa: PLC0415 - what junit and github say of the row

    (case,) = _comparison_cases(comparison)
    assert not case.ok and case.severity == "error" and "kernel, from the native twins: minor faults" in case.message


def test_more_system_time_alone_is_flagged_and_never_fails_a_build():
    (result,) = compare_rows(counted(faults(1), lognormal(3, 0.005, n=24)), counted(faults(2), lognormal(4, 0.008, n=24)), COUNTS)
    (sys_time,) = [k for k in result.kernel if k.metric == "native_sys_s"]
    assert sys_time.verdict == "more" and not sys_time.regression
    assert not result.regression and result.verdict == "no change"


def test_runs_without_native_twins_are_judged_on_the_count_alone():
    base = [row(i, instructions=80_000_000) for i in range(12)]
    (result,) = compare_rows(base, [row(i, instructions=80_000_000) for i in range(12)], COUNTS)
    assert result.metric == "instructions" and result.kernel == []
