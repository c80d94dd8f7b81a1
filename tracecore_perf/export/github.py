"""``--format github``: GitHub Actions workflow commands (``::error``/``::warning``) and the
text report for the log (:func:`render`), and the markdown (``--format markdown``) the command
line appends to ``$GITHUB_STEP_SUMMARY`` (:func:`step_summary`)."""

from __future__ import annotations

from tracecore_perf.export import cases, markdown, text
from tracecore_perf.history.models import HistoryVerdict
from tracecore_perf.verdicts.models import Comparison, Verdict


def _escape(value: str) -> str:
    # workflow-command escaping, as @actions/core does it
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape(value).replace(":", "%3A").replace(",", "%2C")


def render(result: Verdict | Comparison | HistoryVerdict) -> str:
    out = []
    for case in cases(result):
        level = "error" if not case.ok else "warning" if case.severity == "warning" else "notice" if case.skipped else None
        if level is None:
            continue
        title = _escape_property(f"tracecore-perf {case.suite}: {case.name}")
        out.append(f"::{level} title={title}::{_escape(case.message)}\n")
    return "".join(out) + text.render(result)


def step_summary(result: Verdict | Comparison | HistoryVerdict) -> str:
    """What goes to the job's step summary: the markdown a PR comment holds."""
    return markdown.render(result) + "\n"
