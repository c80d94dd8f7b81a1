"""``--format markdown``: a table a pull-request comment (or a job's step summary) can hold.

A comparison gets a table line per group (agent, task), the worst first (regressions, then the largest
ratio): its verdict, ratio and interval, adjusted p-value and episode counts, then its
warnings. A check or a history check gets one row per case. The first line is an HTML comment
(:data:`MARKER`) that a workflow looks for to update its one comment instead of adding more.

Every text a result holds (agent names, task refs, errors, messages naming them) goes in
through ``escape.markdown``: one line of literal text, no HTML, link, image, mention, issue
reference or autolink, its pipes escaped. Ours around it (headings, stamps, figures) is not.
"""

from __future__ import annotations

from tracecore_perf.escape import markdown as cell
from tracecore_perf.export import Case, cases
from tracecore_perf.history.models import HistoryVerdict
from tracecore_perf.verdicts.models import Comparison, GroupComparison, Verdict, kernel_text, p_text, ratio_text

MARKER = "<!-- tracecore-perf -->"


def _mark(case: Case) -> str:
    return "❌" if not case.ok else "⚠️" if case.severity == "warning" else "➖" if case.skipped else "✅"


def case_table(title: str, rows: list[Case]) -> list[str]:
    lines = [title, "", "| | check | result |", "|---|---|---|"]
    lines += [f"| {_mark(c)} | {cell(c.suite)}: {cell(c.name)} | {cell(c.message)} |" for c in rows]
    return lines


def _worst_first(row: GroupComparison) -> tuple:
    return (not row.regression, row.verdict != "slower", -(row.ratio.value or 0.0))


def _comparison(c: Comparison) -> list[str]:
    regressions = sum(row.regression for row in c.rows)
    state = f"**{regressions} REGRESSION{'S' if regressions != 1 else ''}**" if regressions else c.verdict
    lines = [
        f"### tracecore-perf compare `{c.baseline}` → `{c.current}` ({c.metric}): {state}",
        "",
        f"Regression: slower by more than {c.margin:.0%} at alpha {c.alpha:g} (Benjamini-Hochberg); "
        f"changes under {c.noise:.1%} are no change."
        + (f" Both runs on machine `{c.machine_ids[0]}`." if c.machine_ids and c.machine_class_match else ""),
        "",
        "| | scenario row | verdict | ratio [95% interval] | p (adjusted) | episodes |",
        "|---|---|---|---|---|---|",
    ]
    for row in sorted(c.rows, key=_worst_first):
        mark = "❌" if row.regression else "⚠️" if row.verdict == "slower" else "✅"
        lines.append(
            f"| {mark} | {cell(row.agent)} on {cell(row.task_ref)} | {'REGRESSION' if row.regression else row.verdict} "
            f"| {ratio_text(row.ratio.value, row.ratio.low, row.ratio.high, digits=4 if c.metric == 'instructions' else 3)} "
            f"| {p_text(row.p_adjusted)} | {row.baseline_n} / {row.current_n} |"
        )
    moved = [(row, k) for row in c.rows for k in row.kernel if k.verdict != "no change"]
    if moved:
        lines += ["", "The kernel's work for the same episodes (their native twins), where it changed past its noise floor:", ""]
        lines += [f"- {cell(row.agent)} on {cell(row.task_ref)}: {cell(kernel_text(k))}" for row, k in moved]
    for label, keys in (("only in the baseline", c.baseline_only), ("only in the current run", c.current_only)):
        if keys:
            lines += ["", f"{label.capitalize()}: {cell('; '.join(keys))}"]
    if c.notices:
        lines += [""] + [f"> ⚠️ {cell(n.message)}" for n in c.notices]
    return lines


def render(result: Verdict | Comparison | HistoryVerdict) -> str:
    if isinstance(result, Comparison):
        lines = _comparison(result)
    elif isinstance(result, Verdict):
        lines = case_table(f"### tracecore-perf check `{result.stamp}`: {'pass' if result.ok else 'FAIL'}", cases(result))
    else:
        state = "pass" if result.ok else "REGRESSION"
        lines = case_table(f"### tracecore-perf history check `{result.newest}`: {state}", cases(result))
    return "\n".join([MARKER, *lines]) + "\n"
