"""Where the verdict stages' output goes: the exporters return text (or the JUnit document's
bytes) and the command line writes it: stdout, the JUnit file, ``$GITHUB_STEP_SUMMARY``."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import TextIO

from tracecore_perf.cli.args import PROG
from tracecore_perf.escape import log_line
from tracecore_perf.files import write_atomic
from tracecore_perf.history.models import HistoryVerdict
from tracecore_perf.published import PublishedRun
from tracecore_perf.verdicts.models import LOUD_WARNINGS, Comparison, Verdict


def emit(fmt: str, result: Verdict | Comparison | HistoryVerdict, junit_file: Path, stream: TextIO | None = None) -> None:
    from tracecore_perf.export import render

    out = stream or sys.stdout
    rendered = render(fmt, result)
    if isinstance(rendered, bytes):  # junit: a file, and one line saying where it went
        write_atomic(junit_file, rendered)  # never through a link planted at its name
        out.write(f"{'pass' if result.ok else 'FAIL'}: JUnit report written to {junit_file}\n")
        return
    out.write(rendered)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if fmt == "github" and summary:
        from tracecore_perf.errors import UsageError
        from tracecore_perf.export import github
        from tracecore_perf.files import append_regular

        # appended, as GitHub asks; the path was held to the output guard before any work
        # (args.check_junit_target), and is never appended through a link or into a FIFO
        try:
            append_regular(Path(summary), github.step_summary(result).encode("utf-8"))
        except OSError as exc:
            raise UsageError(f"cannot append to GITHUB_STEP_SUMMARY {summary}: {exc.strerror or exc}") from None


def report_comparison(
    comparison: Comparison, current: PublishedRun, args: argparse.Namespace, baseline: PublishedRun | None = None
) -> int:
    """``compare``, ``ab`` and ``continuous``: the comparison in ``--format``, the loud warnings
    on stderr too; between two instruction runs that kept profiles, in text and markdown (and
    GitHub's step summary), what ``explain`` says of each changed row follows it."""
    for notice in comparison.notices:
        if notice.code in LOUD_WARNINGS:
            # loud even when stdout is a JSON or JUnit file
            print(log_line(f"{PROG}: WARNING: {notice.message}"), file=sys.stderr)
    emit(args.format, comparison, args.junit_file or current.output_dir / f"perf-compare-{current.stamp}.junit.xml")
    if baseline is not None and args.format in ("text", "markdown", "github"):
        explain_changed_rows(baseline, current, args.format)
    return 0 if comparison.ok else 1


def explain_changed_rows(baseline: PublishedRun, current: PublishedRun, fmt: str) -> None:
    """``explain``'s account of the rows whose count moved, after the comparison: folded
    ``<details>`` blocks in markdown (the PR comment) and the step summary, the text view in
    text. Nothing when either run kept no profiles (a native run, or one from before)."""
    from tracecore_perf.explain import explain_runs
    from tracecore_perf.explain.render import render_markdown, render_text

    if not all(any(row.profile for row in run.series()) for run in (baseline, current)):
        return
    explanation = explain_runs(baseline, current, top=5)
    if not explanation.changed:
        return
    if fmt == "text":
        sys.stdout.write("\n" + render_text(explanation))
        return
    block = render_markdown(explanation)
    if fmt == "markdown":
        sys.stdout.write("\n" + block)
        return
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        from tracecore_perf.files import append_regular

        with contextlib.suppress(OSError):  # the comparison was appended just before; this is its footnote
            append_regular(Path(summary), ("\n" + block).encode("utf-8"))
