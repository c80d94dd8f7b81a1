"""The monitor's sampling policy (dense at the start, settling at --sample-interval) and the
charts' honesty about too few samples, without running anything."""

from __future__ import annotations

import pytest

from tracecore_perf.run.monitor import MIN_GAP_S, next_gap


def _schedule(seconds: float, interval: float) -> list[float]:
    """The sample times next_gap gives over ``seconds`` of run."""
    times, t = [], 0.0
    while True:
        t += next_gap(t, interval)
        if t > seconds:
            return times
        times.append(t)


def test_the_first_second_is_sampled_every_tenth_of_a_second():
    assert [round(t, 3) for t in _schedule(1.0, 0.5)] == [round(0.1 * i, 3) for i in range(1, 11)]


@pytest.mark.parametrize(("seconds", "at_least"), [(1.0, 10), (2.0, 15), (5.0, 25)])
def test_a_short_run_gets_a_series_to_chart(seconds, at_least):
    assert len(_schedule(seconds, 0.5)) >= at_least


def test_a_long_run_settles_at_the_interval_and_costs_few_extra_samples():
    times = _schedule(600.0, 0.5)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert max(gaps) == pytest.approx(0.5) and all(g == pytest.approx(0.5) for g in gaps[-100:])
    assert len(times) - 600 / 0.5 <= 30  # against a fixed 0.5 s interval


def test_an_interval_below_the_ramps_floor_wins():
    assert next_gap(0.0, 0.05) == 0.05 and next_gap(100.0, 0.05) == 0.05
    assert next_gap(0.0, 2.0) == MIN_GAP_S and next_gap(100.0, 2.0) == 2.0


def test_charts_say_when_there_are_too_few_samples():
    from tracecore_perf.report.charts import MIN_SAMPLES, _too_few_samples

    class Data:  # only what the helper reads
        samples: list = []

    data = Data()
    assert _too_few_samples(data) == "no resource samples in this run"
    data.samples = [object()] * 2
    assert _too_few_samples(data) == f"too few resource samples to draw a time series: 2 (needs {MIN_SAMPLES})"
    data.samples = [object()] * MIN_SAMPLES
    assert _too_few_samples(data) is None
