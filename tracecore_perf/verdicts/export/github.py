"""``--format github``: GitHub Actions workflow commands (``::error``/``::warning``), the
text report for the log, and a markdown table appended to ``$GITHUB_STEP_SUMMARY``."""

from __future__ import annotations

import os
from pathlib import Path

from tracecore_perf.verdicts.export import Case, Target, cases, text
from tracecore_perf.verdicts.models import Comparison, Verdict


def _escape(value: str) -> str:
    # workflow-command escaping, as @actions/core does it
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape(value).replace(":", "%3A").replace(",", "%2C")


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def markdown(result: Verdict | Comparison, rows: list[Case]) -> str:
    if isinstance(result, Verdict):
        title = f"### tracecore-perf check {result.stamp}: {'pass' if result.ok else 'FAIL'}"
    else:
        title = f"### tracecore-perf compare {result.baseline} → {result.current}: {result.verdict}"
    lines = [title, "", "| | check | result |", "|---|---|---|"]
    for case in rows:
        mark = "❌" if not case.ok else "⚠️" if case.severity == "warning" else "➖" if case.skipped else "✅"
        lines.append(f"| {mark} | {_cell(case.suite)}: {_cell(case.name)} | {_cell(case.message)} |")
    return "\n".join(lines) + "\n\n"


def write(result: Verdict | Comparison, target: Target) -> None:
    rows = cases(result)
    for case in rows:
        level = "error" if not case.ok else "warning" if case.severity == "warning" else "notice" if case.skipped else None
        if level is None:
            continue
        title = _escape_property(f"tracecore-perf {case.suite}: {case.name}")
        target.stream.write(f"::{level} title={title}::{_escape(case.message)}\n")
    text.write(result, target)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with Path(summary).open("a", encoding="utf-8") as fh:
            fh.write(markdown(result, rows))
