"""Output formats for the verdict stages, one module per format (as hyperfine's
``export/``): adding a format never touches evaluation or comparison.

Every format module has ``render(result)``, where ``result`` is a ``Verdict`` or a
``Comparison``: it returns the text (``junit``: the XML document's bytes) and writes nothing;
the command line decides where it goes (stdout, the JUnit file, ``$GITHUB_STEP_SUMMARY``).
``github`` and ``junit`` see results as flat :class:`Case` lists (one per threshold, trend
check or group), so they need not know which stage produced them.
"""

from __future__ import annotations

import importlib

import msgspec

from tracecore_perf.history.models import HistoryVerdict
from tracecore_perf.verdicts.models import Comparison, Finding, Notice, Severity, Verdict, kernel_text, p_text, ratio_text

FORMATS = {
    "text": "tracecore_perf.export.text",
    "json": "tracecore_perf.export.jsonout",
    "github": "tracecore_perf.export.github",
    "junit": "tracecore_perf.export.junit",
    "markdown": "tracecore_perf.export.markdown",
}


class Case(msgspec.Struct, kw_only=True):
    """One gate-able line of a result: a threshold, a trend check, a group (agent, task)."""

    suite: str
    name: str
    ok: bool
    severity: Severity | None = None  # for a case that is not ok, or a warning on one that is
    message: str = ""
    details: str = ""
    skipped: bool = False  # a check that could not be made (insufficient data): neither pass nor fail


Result = Verdict | Comparison | HistoryVerdict


def cases(result: Result) -> list[Case]:
    if isinstance(result, Verdict):
        return _verdict_cases(result)
    if isinstance(result, HistoryVerdict):
        return _history_cases(result)
    return _comparison_cases(result)


def _history_cases(verdict: HistoryVerdict) -> list[Case]:
    """``history check``: a failed case per slower change point the newest run sits on."""
    from tracecore_perf.history.export import describe, where

    out = []
    for cp, ok in [(cp, False) for cp in verdict.regressions] + [(cp, True) for cp in verdict.other_change_points]:
        out.append(
            Case(
                suite="history",
                name=f"{cp.metric} of {where(cp.agent, cp.task_ref)}",
                ok=ok,
                severity=None if ok else "error",
                message=describe(cp),
                details=msgspec.json.encode(cp).decode(),
            )
        )
    if not out:
        message = f"no change point of {', '.join(verdict.metrics)} on the newest run's level ({verdict.series_checked} series)"
        out.append(Case(suite="history", name=f"newest run {verdict.newest}", ok=True, message=message))
    out += [Case(suite="history", name="note", ok=True, severity="info", message=n, skipped=True) for n in verdict.notes]
    return out


def _finding_case(suite: str, finding: Finding, details: object) -> Case:
    return Case(
        suite=suite,
        name=finding.code.value,
        ok=finding.severity != "error",
        severity=finding.severity,
        message=finding.explanation,
        details=msgspec.json.encode(details).decode(),
    )


def _verdict_cases(verdict: Verdict) -> list[Case]:
    out = [
        Case(suite="thresholds", name=t.name, ok=t.ok, severity=None if t.ok else "error", message=t.message)
        for t in verdict.thresholds
    ]
    out += [_finding_case("trends", f, {"evidence": f.evidence, "episodes": f.episodes}) for f in verdict.findings]
    for check in verdict.trends:
        if check.state == "clear":
            out.append(Case(suite="trends", name=check.code.value, ok=True, message=f"clear: {check.message}"))
        elif check.state == "insufficient data":
            message = f"insufficient data: {check.message}"
            out.append(Case(suite="trends", name=check.code.value, ok=True, severity="info", message=message, skipped=True))
    out += [_notice_case(n) for n in verdict.notices]
    return out


def _notice_case(notice: Notice) -> Case:
    """A warning, named by its code (``busy_host``, ``machine_class_mismatch``, ...)."""
    return Case(suite="run", name=notice.code.value, ok=True, severity="warning", message=notice.message)


def _comparison_cases(comparison: Comparison) -> list[Case]:
    out = []
    for row in comparison.rows:
        message = f"{row.verdict}: {ratio_text(row.ratio.value, row.ratio.low, row.ratio.high)}, p={p_text(row.p_adjusted)}"
        moved = [kernel_text(k) for k in row.kernel if k.verdict != "no change"]
        if moved:  # the count may not have moved: say what did
            message += "; kernel, from the native twins: " + "; ".join(moved)
        severity = "error" if row.regression else "warning" if row.verdict == "slower" else None
        out.append(
            Case(
                suite="compare",
                name=f"{row.agent} on {row.task_ref}",
                ok=not row.regression,
                severity=severity,
                message=message,
                details=msgspec.json.encode(row).decode(),
            )
        )
    out += [_notice_case(n) for n in comparison.notices]
    return out


def render(fmt: str, result: Result) -> str | bytes:
    """``result`` in format ``fmt`` (a key of :data:`FORMATS`)."""
    return importlib.import_module(FORMATS[fmt]).render(result)
