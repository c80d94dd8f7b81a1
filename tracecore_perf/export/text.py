"""``--format text`` (the default): a short report for people, one line per threshold,
finding and group. Agent names, task refs and errors are in it: every line is made a
safe line of plain output (``escape.log_line``: control characters shown escaped, no GitHub
workflow command), as a terminal and a CI runner read it."""

from __future__ import annotations

from tracecore_perf.escape import log_line
from tracecore_perf.history.models import HistoryVerdict
from tracecore_perf.verdicts.models import Comparison, Verdict, kernel_text, p_text, ratio_text


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:+.1f}%"


def _verdict(verdict: Verdict) -> list[str]:
    lines = [f"tracecore-perf check {verdict.stamp}: {'PASS' if verdict.ok else 'FAIL'}"]
    for notice in verdict.notices:
        lines.append(f"  WARNING {notice.message}")
    lines.append("thresholds:")
    for t in verdict.thresholds:
        lines.append(f"  {'ok  ' if t.ok else 'FAIL'} {t.message}")
    if verdict.trends:
        lines.append("trend checks:")
        for check in verdict.trends:
            lines.append(f"  {check.state:17} {check.code.value}: {check.message}")
    elif not verdict.findings:
        lines.append("trend checks: none run (--no-trends)")
    if verdict.findings:
        lines.append("findings:")
        for f in verdict.findings:
            episodes = f" (episodes {', '.join(map(str, f.episodes[:12]))}{' ...' if len(f.episodes) > 12 else ''})"
            lines.append(f"  {f.severity.upper():7} {f.code.value}: {f.explanation}{episodes if f.episodes else ''}")
    elif verdict.trends:
        lines.append("findings: none")
    return lines


def _comparison(c: Comparison) -> list[str]:
    lines = [f"tracecore-perf compare {c.baseline} -> {c.current} ({c.metric}): {c.verdict.upper()}"]
    for notice in c.notices:
        lines.append(f"  WARNING {notice.message}")
    if c.machine_ids and c.machine_class_match:
        lines.append(f"  both runs on machine {c.machine_ids[0]}")
    drift = "" if not c.drift else f", between-run drift at least {c.drift:.0%} per run"
    lines.append(
        f"  alpha {c.alpha:g} (Benjamini-Hochberg across rows), noise floor {c.noise * 100:g}%, "
        f"regression margin {c.margin * 100:g}%" + drift
    )
    for row in c.rows:
        mark = "REGRESSION " if row.regression else ""
        lines.append(f"  {row.agent} on {row.task_ref}: {mark}{row.verdict}")
        if row.metric == "instructions" and row.baseline_median_instructions and row.current_median_instructions:
            lines.append(
                f"    median {row.baseline_median_instructions / 1e6:,.3f} -> {row.current_median_instructions / 1e6:,.3f} "
                f"M instructions, {ratio_text(row.ratio.value, row.ratio.low, row.ratio.high, digits=4)}, "
                f"p={p_text(row.p_value)} (adjusted {p_text(row.p_adjusted)}), n={row.baseline_n}/{row.current_n}"
                f"{' paired by seed' if row.paired else ''}"
            )
            if row.kernel:
                lines.append("    kernel, from the native twins: " + "; ".join(kernel_text(k) for k in row.kernel))
        elif row.baseline_median_s is not None and row.current_median_s is not None:
            lines.append(
                f"    median {row.baseline_median_s * 1000:.1f} -> {row.current_median_s * 1000:.1f} ms, "
                f"{'' if row.ratio.value is None else 'ratio '}{ratio_text(row.ratio.value, row.ratio.low, row.ratio.high)}, "
                f"p={p_text(row.p_value)} (adjusted {p_text(row.p_adjusted)}), n={row.baseline_n}/{row.current_n}"
            )
        if row.se_log_ratio is not None and row.drift_within is not None:
            shown = ["n/a" if d is None else f"{d:.1%}" for d in row.drift_within]
            lines.append(
                f"    uncertainty +/-{row.se_log_ratio:.1%} (1 s.e.); drift within the runs {shown[0]} / {shown[1]} "
                f"({'/'.join(map(str, row.blocks or []))} blocks); episodes alone would say p={p_text(row.p_value_episodes)}"
            )
        if row.success_rate_delta is not None:
            lines.append(
                f"    success {row.success_rate_baseline:.1%} -> {row.success_rate_current:.1%} "
                f"(p={p_text(row.success_p_value)}), artifact bytes/episode {row.artifact_bytes_mean_delta:+,.0f}"
            )
    for label, keys in (("only in baseline", c.baseline_only), ("only in current", c.current_only)):
        if keys:
            lines.append(f"  {label}: {'; '.join(keys)}")
    lines.append(
        f"  throughput {c.throughput_eps_baseline} -> {c.throughput_eps_current} episodes/s ({_pct(c.throughput_delta)}), "
        f"success rate {_pct(c.success_rate_delta)} points"
    )
    shown = {k: v for k, v in c.resource_deltas.items() if v is not None}
    if shown:
        lines.append("  resources: " + ", ".join(f"{k} {v:+,.4g}" for k, v in shown.items()))
    return lines


def render(result: Verdict | Comparison | HistoryVerdict) -> str:
    if isinstance(result, HistoryVerdict):
        from tracecore_perf.history.export import verdict_lines

        lines = verdict_lines(result)
    else:
        lines = _verdict(result) if isinstance(result, Verdict) else _comparison(result)
    return "".join(log_line(line) + "\n" for line in lines)
