"""TraceCore's performance guide's thresholds and the trend checks on one published run (``check``).

Thresholds are hard limits on the summary (exit 1 when one breaks); trends are findings
drawn from the series and samples (``trends.py``). Rendering lives in ``export/``, so a new
output format never touches evaluation; the command line is ``cli/check.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import msgspec

from tracecore_perf.compat import tomllib
from tracecore_perf.errors import UsageError
from tracecore_perf.published import PublishedRun
from tracecore_perf.verdicts.models import Finding, Notice, Severity, ThresholdResult, TrendCheck, Verdict, WarningCode
from tracecore_perf.verdicts.notices import run_notices

__all__ = [
    "Finding",
    "Severity",
    "ThresholdResult",
    "Thresholds",
    "TrendCheck",
    "Verdict",
    "evaluate",
    "load_thresholds",
    "reason_allowed",
]

NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]


# TraceCore's performance guide's run_artifacts.total_bytes <= 2,000,000 was set for its 24-episode slice.
SEED_TOTAL_BYTES = 2_000_000
SEED_SLICE_EPISODES = 24


def default_total_bytes_limit(episodes: int) -> int:
    """The performance guide's total-bytes threshold for a run of ``episodes``: 2,000,000 bytes up to the
    24-episode slice, and the same budget per episode (83,333 bytes) beyond it, so that a
    healthy run of any length holds it (on-disk bytes grow linearly with episodes)."""
    return SEED_TOTAL_BYTES * max(episodes, SEED_SLICE_EPISODES) // SEED_SLICE_EPISODES


class Thresholds(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """TraceCore's performance guide's initial review thresholds; every field can be overridden from
    ``[tool.tracecore_perf.thresholds]`` or ``--thresholds FILE``. An explicit
    ``max_run_artifacts_total_bytes`` is absolute; left unset it is the performance guide's value scaled to
    the run's episodes (:func:`default_total_bytes_limit`)."""

    max_failure_count: NonNegInt = 0
    max_wall_clock_s: NonNegFloat = 15.0
    max_run_artifacts_total_bytes: NonNegInt | None = None
    max_run_artifacts_avg_bytes: NonNegFloat = 150_000.0
    # a failure reason matches when it equals an entry, or its category (text before the
    # first ":", e.g. "timeout" or "logic_failure") does
    allowed_failure_reasons: list[str] = []
    trends: bool = True


def reason_allowed(reason: str, allowed: set[str]) -> bool:
    return reason in allowed or reason.split(":", 1)[0].strip() in allowed


def _table_from_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"thresholds file not found: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"thresholds file is a directory: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"thresholds file unreadable: {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"thresholds file is not valid TOML: {path}: {exc}") from None
    # a pyproject-style file, a [thresholds] table, or the keys at top level
    if "tool" in data:
        return data.get("tool", {}).get("tracecore_perf", {}).get("thresholds", {})
    if set(data) == {"thresholds"} and isinstance(data["thresholds"], dict):
        return data["thresholds"]
    return data


def _validated(table: Any, source: str) -> dict[str, Any]:
    """The keys ``table`` sets, after checking them against :class:`Thresholds`."""
    if not isinstance(table, dict):
        raise UsageError(f"{source}: thresholds must be a table")
    try:
        msgspec.convert(table, Thresholds)
    except msgspec.ValidationError as exc:
        raise UsageError(f"{source}: {exc}") from None
    return table


def load_thresholds(file: Path | None = None, cwd: Path | None = None) -> Thresholds:
    """Defaults, then ``[tool.tracecore_perf.thresholds]`` of ``cwd/pyproject.toml``, then
    ``file``. An unknown key or a wrong type is a UsageError naming the file."""
    merged: dict[str, Any] = {}
    pyproject = (cwd or Path.cwd()) / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"pyproject.toml is not valid TOML: {pyproject}: {exc}") from None
        table = data.get("tool", {}).get("tracecore_perf", {}).get("thresholds")
        if table is not None:
            merged.update(_validated(table, f"{pyproject} [tool.tracecore_perf.thresholds]"))
    if file is not None:
        merged.update(_validated(_table_from_file(file), str(file)))
    return msgspec.convert(merged, Thresholds)


def _limit(name: str, limit: float | int, actual: float | int | None, unit: str = "") -> ThresholdResult:
    ok = actual is None or actual <= limit
    shown = "n/a" if actual is None else f"{actual:,}{unit}"
    relation = "<=" if ok else ">"
    return ThresholdResult(name=name, limit=limit, actual=actual, ok=ok, message=f"{name} {shown} {relation} {limit:,}{unit}")


def _total_bytes(limits: Thresholds, episodes: int, actual: int) -> ThresholdResult:
    name = "run_artifacts.total_bytes"
    if limits.max_run_artifacts_total_bytes is not None:
        return _limit(name, limits.max_run_artifacts_total_bytes, actual, " B")
    limit = default_total_bytes_limit(episodes)
    result = _limit(name, limit, actual, " B")
    if episodes > SEED_SLICE_EPISODES:
        result.message += (
            f" (the guide's {SEED_TOTAL_BYTES:,} B per {SEED_SLICE_EPISODES} episodes, scaled to {episodes:,} episodes)"
        )
    return result


def evaluate(run: PublishedRun, thresholds: Thresholds | None = None, baseline: PublishedRun | None = None) -> Verdict:
    """The run against the thresholds, plus trend findings (and the baseline's success
    rate and failure reasons when a baseline is given)."""
    limits = thresholds or Thresholds()
    summary = run.summary()
    wall = _limit("max_wall_clock_s", limits.max_wall_clock_s, summary.max_wall_clock_s, " s")
    if summary.timing_note:  # an instruction run: Valgrind's time, not the episodes'
        wall.ok, wall.message = True, f"max_wall_clock_s not judged: {summary.timing_note}"
    results = [
        ThresholdResult(
            name="failure_count",
            limit=limits.max_failure_count,
            actual=summary.failure_count,
            ok=summary.failure_count <= limits.max_failure_count,
            message=(
                f"failure_count {summary.failure_count} "
                f"{'<=' if summary.failure_count <= limits.max_failure_count else '>'} {limits.max_failure_count}"
            ),
        ),
        wall,
        _total_bytes(limits, summary.episodes, summary.run_artifacts.total_bytes),
        _limit(
            "run_artifacts.avg_bytes",
            limits.max_run_artifacts_avg_bytes,
            None if summary.run_artifacts.avg_bytes is None else round(summary.run_artifacts.avg_bytes, 1),
            " B",
        ),
    ]
    integrity = summary.integrity
    results.append(
        ThresholdResult(
            name="integrity.clean",
            limit=True,
            actual=integrity.clean,
            ok=integrity.clean,  # not a threshold to relax: tampered evidence is no evidence
            message="the evidence is what the harness wrote"
            if integrity.clean
            else "the run's evidence was tampered with: " + "; ".join(integrity.problems[:3]),
        )
    )
    allowed = set(limits.allowed_failure_reasons)
    if baseline is not None:
        allowed |= set(baseline.summary().failure_reasons)
    unexpected = sorted(reason for reason in summary.failure_reasons if not reason_allowed(reason, allowed))
    results.append(
        ThresholdResult(
            name="failure_reasons",
            limit=sorted(allowed),
            actual=unexpected,
            ok=not unexpected,
            message=(
                "no unexpected failure reasons"
                if not unexpected
                else f"{len(unexpected)} unexpected failure reason(s): " + "; ".join(r[:120] for r in unexpected[:3])
            ),
        )
    )

    manifest = run.manifest()
    notices = run_notices(manifest, summary.episodes, time_matters=not manifest.settings.instructions)

    findings: list[Finding] = []
    states: list[TrendCheck] = []
    if limits.trends:
        from tracecore_perf.verdicts import trends

        findings, states = trends.assess(run, baseline=baseline)
    if baseline is not None and baseline.manifest().machine_id() != manifest.machine_id():
        notices.append(
            Notice(
                code=WarningCode.MACHINE_CLASS_MISMATCH,
                message=f"baseline {baseline.stamp} ran on another machine "
                f"({baseline.manifest().machine_id()} vs {manifest.machine_id()}); compare only runs of one machine",
            )
        )
    ok = all(r.ok for r in results) and not any(f.severity == "error" for f in findings)
    return Verdict(
        ok=ok,
        stamp=run.stamp,
        thresholds=results,
        findings=findings,
        notices=notices,
        trend_checks=[state.code.value for state in states],
        trends=states,
    )
