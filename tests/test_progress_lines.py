"""Progress where no bar shows: a ``run.progress`` log line at most every so often, and one
for the last row, whatever the clock says."""

from __future__ import annotations

from runs import row
from structlog.testing import capture_logs

from tracecore_perf.run.console import ProgressLines


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_line_at_most_every_period_and_one_for_the_last_row():
    clock = Clock()
    lines = ProgressLines(total=6, already_done=1, every=10.0, clock=clock)
    with capture_logs() as logs:
        for index, (at, success) in enumerate([(1.0, True), (9.9, False), (10.0, True), (15.0, True), (16.0, True)]):
            clock.now = at
            lines.advance(row(index, success=success))
    said = [(entry["done"], entry["failed"]) for entry in logs if entry["event"] == "run.progress"]
    # 10 s after the start (done 4), then the last row (done 6) however soon after
    assert said == [(4, 1), (6, 1)]
    assert all(entry["total"] == 6 for entry in logs)
