"""``--format github``: GitHub Actions workflow commands (``::error``/``::warning``) and the
text report for the log (:func:`render`), and the markdown (``--format markdown``) the command
line appends to ``$GITHUB_STEP_SUMMARY`` (:func:`step_summary`).

GitHub's runner reads every line for commands. Agent text (names, task refs, errors) is only
ever a command's escaped data or title (``escape.github_command``, ``escape.github_property``),
and each line of the text report is a plain line no command can start in (``escape.log_line``)."""

from __future__ import annotations

from tracecore_perf.escape import github_command, github_property, log_line
from tracecore_perf.export import cases, markdown, text
from tracecore_perf.history.models import HistoryVerdict
from tracecore_perf.verdicts.models import Comparison, Verdict


def render(result: Verdict | Comparison | HistoryVerdict) -> str:
    out = []
    for case in cases(result):
        level = "error" if not case.ok else "warning" if case.severity == "warning" else "notice" if case.skipped else None
        if level is None:
            continue
        title = github_property(f"tracecore-perf {case.suite}: {case.name}")
        out.append(f"::{level} title={title}::{github_command(case.message)}\n")
    # text.render's lines are log lines already; said again here, where the runner reads them
    return "".join(out) + "".join(log_line(line) + "\n" for line in text.render(result).splitlines())


def step_summary(result: Verdict | Comparison | HistoryVerdict) -> str:
    """What goes to the job's step summary: the markdown a PR comment holds."""
    return markdown.render(result) + "\n"
