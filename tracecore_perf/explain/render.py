"""An :class:`~tracecore_perf.explain.Explanation` as text (the terminal) and as markdown
(``<details>`` blocks folded under each changed row of compare's markdown and the PR comment)."""

from __future__ import annotations

from tracecore_perf.escape import markdown, terminal
from tracecore_perf.explain import Explanation, RowExplanation, View


def _signed(value: int) -> str:
    return f"{value:+,}"


def _share(change: int, total_change: int) -> str:
    return f"{change / total_change:.0%}" if total_change else "-"


def row_title(row: RowExplanation) -> str:
    ratio = row.ratio
    moved = f"x{ratio:.4f}" if ratio is not None else "no count"
    counts = f"{row.base_instructions or 0:,} -> {row.current_instructions or 0:,}"
    return terminal(f"{row.agent} on {row.task_ref}: {counts} instructions ({moved})")


def _view_lines(title: str, view: View) -> list[str]:
    total_change = view.current_total - view.base_total
    lines = [f"  {title} ({view.unit}: {view.base_total:,} -> {view.current_total:,}, {_signed(total_change)})"]
    if not view.functions:
        lines.append("    no function's own cost moved")
    for f in view.functions:
        lines.append(
            f"    {_signed(f.own_change):>14} own ({_share(f.own_change, total_change):>5})  "
            f"{_signed(f.inclusive_change):>14} inclusive  {terminal(f.name)}"
        )
    return lines


def render_text(explanation: Explanation, *, all_rows: bool = False) -> str:
    rows = explanation.rows if all_rows else explanation.changed
    lines = [f"explain {explanation.base} -> {explanation.current} (rows whose count moved past {explanation.noise:.1%})"]
    if not rows:
        lines.append("no scenario row's count moved past the noise floor" if explanation.rows else "neither run kept profiles")
    for row in rows:
        lines.append("")
        lines.append(row_title(row))
        if row.python_functions is not None:
            lines += _view_lines("Python functions, by bytecodes executed (traced replay)", row.python_functions)
        if row.c_functions is not None:
            lines += _view_lines("the interpreter's C functions, by instructions (callgrind)", row.c_functions)
        if row.missing:
            lines.append(f"  {terminal(row.missing)}")
        if row.profiles:
            lines.append(f"  callgrind profiles: {' '.join(row.profiles)}")
        if row.python_profiles:
            lines.append(f"  Python stacks (folded; speedscope reads them): {' '.join(row.python_profiles)}")
    return "\n".join(lines) + "\n"


def _view_table(title: str, view: View) -> list[str]:
    total_change = view.current_total - view.base_total
    lines = [
        f"**{title}** ({view.unit}: {view.base_total:,} → {view.current_total:,}, {_signed(total_change)})",
        "",
        "| own | share | inclusive | function |",
        "|---:|---:|---:|---|",
    ]
    for f in view.functions:
        share = _share(f.own_change, total_change)
        lines.append(f"| {_signed(f.own_change)} | {share} | {_signed(f.inclusive_change)} | {markdown(f.name)} |")
    return [*lines, ""]


def render_row_markdown(row: RowExplanation) -> str:
    """One row's ``<details>`` block: the top function in the summary, the tables inside."""
    lead = None
    for view in (row.python_functions, row.c_functions):
        if view is not None and view.functions:
            lead = view.functions[0]
            break
    summary = f"where: {markdown(lead.name)} {_signed(lead.own_change)} own" if lead else "where: not explained"
    lines = [f"<details><summary>{markdown(row.agent)} on {markdown(row.task_ref)}, {summary}</summary>", ""]
    if row.python_functions is not None:
        lines += _view_table("Python functions, by bytecodes executed (traced replay)", row.python_functions)
    if row.c_functions is not None:
        lines += _view_table("The interpreter's C functions, by instructions (callgrind)", row.c_functions)
    if row.missing:
        lines += [markdown(row.missing), ""]
    lines.append("</details>")
    return "\n".join(lines)


def render_markdown(explanation: Explanation) -> str:
    rows = explanation.changed
    if not rows:
        return ""
    return "\n\n".join(["#### Where the changed rows' instructions went", *(render_row_markdown(row) for row in rows)]) + "\n"
