"""What a run's own record warns a verdict about, worded once for ``check`` and ``compare``:
it was interrupted (fewer rows than planned), or it started on a busy host (its time figures
are noisy; instruction counts are not)."""

from __future__ import annotations

from tracecore_perf.models import Manifest
from tracecore_perf.verdicts.models import Notice, WarningCode


def run_notices(manifest: Manifest, rows: int, *, label: str = "run", time_matters: bool = True) -> list[Notice]:
    """The notices of one run (``label``: "run", "baseline run", "current run"); ``rows``: how
    many episodes have rows; ``time_matters``: False when the verdict is on instruction counts,
    which a busy host does not move."""
    notices = []
    if manifest.status == "interrupted":
        notices.append(
            Notice(
                code=WarningCode.RUN_INTERRUPTED,
                message=f"{label} {manifest.stamp} was interrupted: {rows} of {manifest.settings.episodes} episodes have rows",
            )
        )
    if not manifest.host.quiet and time_matters:
        notices.append(
            Notice(
                code=WarningCode.BUSY_HOST,
                message=f"{label} {manifest.stamp} started on a busy host ({manifest.host.quiet_reason}): its time "
                "figures are noisy, and differ from another run's by more than the --drift floor assumes",
            )
        )
    if "metrics" in manifest.interpreter.lacks:
        notices.append(
            Notice(
                code=WarningCode.NO_TRACECORE_METRICS,
                message=f"{label} {manifest.stamp} ran TraceCore {manifest.interpreter.tracecore_version}, which has no "
                "metrics pipeline (agent_bench.runner.metrics arrived in 1.0.0): its perf-metrics file is empty",
            )
        )
    return notices
