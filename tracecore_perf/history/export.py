"""History as text for people: ``history show`` and the lines ``history check`` prints (its
json, github and junit formats go through ``export/``, as check's and compare's do)."""

from __future__ import annotations

from tracecore_perf.escape import log_line
from tracecore_perf.history.changes import floors_text, method_text
from tracecore_perf.history.models import METRICS, RUN_WIDE, Acceptance, ChangePoint, History, HistoryVerdict


def value_text(metric: str, value: float | None) -> str:
    if value is None:
        return "–"
    unit = METRICS[metric].unit
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.3f} s"
    if unit == "bytes":
        return f"{value / 2**20:,.1f} MiB" if value >= 2**20 else f"{value:,.0f} B"
    if unit == "ratio":
        return f"{value:.1%}"
    if unit == "instructions":
        return f"{value / 1e6:,.3f} M instructions"
    return f"{value:,.2f} eps"


def where(agent: str, task_ref: str) -> str:
    return "the run" if agent == RUN_WIDE else f"{agent} on {task_ref}"


def accepted_text(accepted: Acceptance) -> str:
    """``accepted with run STAMP [label]: reason``."""
    label = f" [{accepted.label}]" if accepted.label else ""
    return f"accepted with run {accepted.stamp}{label}: {accepted.reason or '(no reason given)'}"


def describe(cp: ChangePoint) -> str:
    """One line: what moved, where, from what to what, what else changed with it, and whether
    it was accepted."""
    ratio = "n/a" if cp.ratio is None else f"x{cp.ratio:.3f}"
    text = (
        f"{cp.direction} from run {cp.stamp}: {cp.metric} of {where(cp.agent, cp.task_ref)} "
        f"{value_text(cp.metric, cp.before)} -> {value_text(cp.metric, cp.after)} ({ratio}; "
        f"{cp.runs_before} runs before, {cp.runs_after} after)"
    )
    if cp.coincides_with:
        text += f"; coincides with {', '.join(cp.coincides_with)}"
    if cp.accepted is not None:
        text += f"; {accepted_text(cp.accepted)}"
    return text


def render_text(found: History) -> str:
    s = found.settings
    lines = [
        f"tracecore-perf history {found.database}: {len(found.runs)} runs, {len(found.change_points)} change points "
        f"(looked for in {', '.join(found.metrics)})",
        f"  {method_text(s)}, {floors_text(found.metrics, s)}, "
        f"order by {s.order}, {'machines mixed' if s.mix_machines else 'one series per machine'}",
        "runs:",
    ]
    accepted = {a.stamp: a for a in found.acceptances}
    for run in found.runs:
        label = f" [{run.label}]" if run.label else ""
        took = accepted.get(run.stamp)
        mark = f"; ACCEPTED at {took.accepted_at[:19]}: {took.reason or '(no reason given)'}" if took else ""
        lines.append(
            f"  {run.stamp}{label} {run.generated_at[:19]} {run.episodes} episodes, {run.workers} workers, {run.isolation}, "
            f"TraceCore {run.tracecore_version}, Python {run.python_version}, machine {run.machine_id}{mark}"
        )
    lines.append("series:")
    for series in found.series:
        values = ", ".join(value_text(series.metric, p.value) for p in series.points[-12:])
        more = "... " if len(series.points) > 12 else ""
        cls = "" if series.machine_id is None else f" [machine {series.machine_id}]"
        lines.append(f"  {series.metric} of {where(series.agent, series.task_ref)}{cls}: {more}{values}")
        for cp in series.change_points:
            lines.append(f"    CHANGE {describe(cp)}")
        if series.note:
            lines.append(f"    ({series.note})")
    return "".join(log_line(line) + "\n" for line in lines)  # agents and task refs are data


def verdict_lines(verdict: HistoryVerdict) -> list[str]:
    """``history check``'s text lines (``export/text.py`` prints each as an ``escape.log_line``)."""
    state = "PASS" if verdict.ok else "REGRESSION"
    lines = [
        f"tracecore-perf history check {verdict.newest or '(no run)'}: {state} "
        f"({verdict.series_checked} series of {', '.join(verdict.metrics)}; {verdict.database})"
    ]
    for cp in verdict.regressions:
        lines.append(f"  REGRESSION {describe(cp)}")
    for cp in verdict.other_change_points:
        lines.append(f"  {'accepted' if cp.accepted else 'change':<10} {describe(cp)}")
    for note in verdict.notes:
        lines.append(f"  note       {note}")
    if verdict.ok and not verdict.other_change_points:
        lines.append(f"  no change point of {', '.join(verdict.metrics)} on the newest run's level")
    return lines
