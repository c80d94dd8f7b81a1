"""Scenario rows and the episode plan.

A scenario is a list of (agent, task_ref, seed) rows, from TraceCore's performance guide's default or a
TOML/JSON file. The plan cycles through the rows: episode ``i`` runs row ``i % len(rows)``
with seed ``row.seed + i``, exactly as TraceCore's own perf scaffold does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import msgspec

from tracecore_perf.errors import UsageError, read_input
from tracecore_perf.models import EpisodeJob, ScenarioRow

DEFAULT_SCENARIO: tuple[ScenarioRow, ...] = (
    ScenarioRow(agent="agents/toy_agent.py", task_ref="filesystem_hidden_config@1", seed=42),
    ScenarioRow(agent="agents/rate_limit_agent.py", task_ref="rate_limited_api@1", seed=11),
    ScenarioRow(agent="agents/chain_agent.py", task_ref="rate_limited_chain@1", seed=7),
    ScenarioRow(agent="agents/ops_triage_agent.py", task_ref="log_alert_triage@1", seed=21),
)


_SURROGATE = re.compile("[\ud800-\udfff]")


def load_scenario(path: Path) -> list[ScenarioRow]:
    """Read a scenario file: a JSON list of rows, a JSON object with a ``rows`` list, or a
    TOML file with ``[[rows]]`` (or ``[[scenario]]``) tables."""
    raw = read_input(path, "scenario file")

    if path.suffix.lower() == ".toml":
        # only a TOML scenario needs it: imported here, off every other run's start (measured:
        # docs/profile.md, "Small costs measured in the code")
        from tracecore_perf.compat import tomllib

        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"scenario file is not valid TOML: {path}: {exc}") from None
    else:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise UsageError(f"scenario file is not valid JSON (use .toml for TOML): {path}: {exc}") from None

    if isinstance(data, dict):
        rows = data.get("rows", data.get("scenario"))
        if rows is None:
            raise UsageError(f"scenario file has no 'rows' list: {path}")
    else:
        rows = data
    if not isinstance(rows, list) or not rows:
        raise UsageError(f"scenario file has no rows: {path}")
    check_row_count(len(rows), f"scenario file {path}")

    parsed: list[ScenarioRow] = []
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise UsageError(f"scenario row {number} is not a table/object: {path}")
        for key in ("agent", "task_ref"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise UsageError(f"scenario row {number} has no '{key}' string: {path}")
            if _SURROGATE.search(row[key]):  # "\udc80" in JSON: no UTF-8 file of the run could record it
                raise UsageError(f"scenario row {number}'s '{key}' is not UTF-8 text (it holds a lone surrogate): {path}")
        seed = row.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise UsageError(f"scenario row {number} has a non-integer seed {seed!r}: {path}")
        try:
            parsed.append(msgspec.convert(row, ScenarioRow))
        except msgspec.ValidationError as exc:
            raise UsageError(f"scenario row {number}: {exc}: {path}") from None
    return parsed


def check_row_count(count: int, where: str) -> None:
    """At most ``defaults.MAX_SCENARIO_ROWS`` rows: the plan cycles the rows (episode ``i``
    runs row ``i % rows``), so rows beyond a run's episodes never run, and a release run is
    1000 episodes; the bound is ten times that."""
    from tracecore_perf import defaults

    if count > defaults.MAX_SCENARIO_ROWS:
        raise UsageError(
            f"{where} has {count} rows, more than the {defaults.MAX_SCENARIO_ROWS} a scenario may have "
            "(episode i runs row i % rows: rows past the episodes never run)"
        )


def plan(rows: list[ScenarioRow], episodes: int, skip: Iterable[int] = ()) -> Iterator[EpisodeJob]:
    """The jobs of a run, in episode order, leaving out the indices in ``skip`` (those a
    resumed run already has rows for). A generator: a 10k-episode plan is never a list."""
    done = set(skip)
    for index in range(episodes):
        if index in done:
            continue
        number = index % len(rows)
        row = rows[number]
        yield EpisodeJob(
            episode_index=index,
            scenario_row=number,
            agent=row.agent,
            task_ref=row.task_ref,
            seed=row.seed + index,
        )
