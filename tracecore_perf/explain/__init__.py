"""``explain BASE CURRENT``: for each scenario row whose instruction count moved past the noise
floor, the functions that account for the move, from the profiles both instruction runs kept
(``run/rundir.py``'s ``profiles/``: one counted episode per row).

Two views of the same episode, each deterministic:

- the interpreter's C functions, by instructions (callgrind's profile of the counted
  episode itself): exact, and they add up to the row's count;
- the Python functions, by bytecodes executed (a traced native replay of the same episode,
  ``run/episode/pyprofile.py``): which TraceCore or agent function did more work, by name,
  file and line, on every CPython this package runs on.

A profile is read only when its bytes are those its row recorded (SHA-256); a row without
both sides' profiles says why it is not explained. ``flame.py`` draws the Python view's
differential flame graph; ``render.py`` writes the text and markdown."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import msgspec

from tracecore_perf import defaults
from tracecore_perf.explain.profiles import Profile, parse_callgrind, parse_folded
from tracecore_perf.models import EpisodeRow
from tracecore_perf.published import PublishedRun
from tracecore_perf.run.rundir import PROFILES

TOP = 8  # functions listed per view and row


class FunctionChange(msgspec.Struct, kw_only=True):
    """One function's cost in the base episode and the current one (own: its own code;
    inclusive: with everything it called), in its view's unit."""

    name: str
    base_own: int
    current_own: int
    base_inclusive: int
    current_inclusive: int

    @property
    def own_change(self) -> int:
        return self.current_own - self.base_own

    @property
    def inclusive_change(self) -> int:
        return self.current_inclusive - self.base_inclusive


class View(msgspec.Struct, kw_only=True):
    """One view of a row's change: the functions whose own cost moved most, largest first."""

    unit: str  # "instructions" (C functions, callgrind) or "bytecodes" (Python functions, traced replay)
    base_total: int
    current_total: int
    functions: list[FunctionChange]


class RowExplanation(msgspec.Struct, kw_only=True):
    """A scenario row (agent, task_ref): its counted episode on both sides, and what changed."""

    agent: str
    task_ref: str
    base_instructions: int | None
    current_instructions: int | None
    changed: bool  # the count moved past the noise floor
    c_functions: View | None = None
    python_functions: View | None = None
    # the files, for a tool of one's own (KCachegrind, speedscope): base then current
    profiles: list[str] = []
    python_profiles: list[str] = []
    missing: str | None = None  # why this row has no explanation

    @property
    def ratio(self) -> float | None:
        if not self.base_instructions or self.current_instructions is None:
            return None
        return self.current_instructions / self.base_instructions


class Explanation(msgspec.Struct, kw_only=True):
    base: str  # the runs' stamps
    current: str
    noise: float  # the relative change below which a row's count is the same
    rows: list[RowExplanation]

    @property
    def changed(self) -> list[RowExplanation]:
        return [row for row in self.rows if row.changed]


def explain_runs(base: PublishedRun, current: PublishedRun, *, top: int = TOP, noise: float | None = None) -> Explanation:
    """Each scenario row both runs profiled, explained where its count moved past ``noise``
    (compare's noise floor on counts by default)."""
    floor = defaults.COMPARE_INSTRUCTIONS["noise"] if noise is None else noise
    base_rows, current_rows = _profiled(base), _profiled(current)
    rows = []
    for key in sorted(set(base_rows) | set(current_rows)):
        b, c = base_rows.get(key), current_rows.get(key)
        rows.append(_explain_row(key, b, c, base, current, floor, top))
    return Explanation(base=base.stamp, current=current.stamp, noise=floor, rows=rows)


def _profiled(run: PublishedRun) -> dict[tuple[str, str], EpisodeRow]:
    """Per (agent, task_ref), the first row with a kept profile."""
    found: dict[tuple[str, str], EpisodeRow] = {}
    for row in sorted(run.series(), key=lambda r: r.episode_index):
        if row.profile and (row.agent, row.task_ref) not in found:
            found[(row.agent, row.task_ref)] = row
    return found


def _explain_row(
    key: tuple[str, str],
    b: EpisodeRow | None,
    c: EpisodeRow | None,
    base: PublishedRun,
    current: PublishedRun,
    noise: float,
    top: int,
) -> RowExplanation:
    agent, task_ref = key
    row = RowExplanation(
        agent=agent,
        task_ref=task_ref,
        base_instructions=b.instructions if b else None,
        current_instructions=c.instructions if c else None,
        changed=False,
    )
    if b is None or c is None:
        row.missing = f"only {'the current run' if b is None else 'the base run'} kept a profile of this row"
        return row
    row.changed = bool(b.instructions and c.instructions and abs(c.instructions / b.instructions - 1) > noise)
    try:
        base_c = parse_callgrind(_kept(base, b.profile, b.profile_sha256))
        current_c = parse_callgrind(_kept(current, c.profile, c.profile_sha256))
    except ProfileUnusable as exc:
        row.missing = str(exc)
        return row
    row.profiles = [str(_where(base, b.profile)), str(_where(current, c.profile))]
    row.c_functions = _view(base_c, current_c, top)
    try:
        base_py = parse_folded(_kept(base, b.python_profile, b.python_profile_sha256))
        current_py = parse_folded(_kept(current, c.python_profile, c.python_profile_sha256))
    except ProfileUnusable as exc:
        row.missing = f"Python functions not explained: {exc}"
        return row
    row.python_profiles = [str(_where(base, b.python_profile)), str(_where(current, c.python_profile))]
    row.python_functions = _view(base_py, current_py, top)
    return row


class ProfileUnusable(Exception):
    """A kept profile that cannot be read as its row recorded it."""


def _where(run: PublishedRun, name: str | None) -> Path:
    return run.output_dir / f"run-{run.stamp}" / PROFILES / (name or "")


PROFILE_CAP_BYTES = 64 * 1024 * 1024  # what a worker keeps at most (episode/callgrind.PROFILE_CAP_BYTES)


def _kept(run: PublishedRun, name: str | None, sha256: str | None) -> str:
    """The text of ``run``'s kept profile ``name``, held to the SHA-256 its row recorded:
    read once, never through a link, never blocking (a FIFO), never more than a worker keeps."""
    if not name or not sha256:
        raise ProfileUnusable("no profile was kept for it (its replay failed)")
    if "/" in name or name.startswith("."):
        raise ProfileUnusable(f"its row names a profile outside the run's profiles folder: {name!r}")
    path = _where(run, name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise ProfileUnusable(f"run {run.stamp}'s profile {path} is unreadable: {exc.strerror or exc}") from None
    try:
        facts = os.fstat(fd)
        if not stat.S_ISREG(facts.st_mode) or facts.st_size > PROFILE_CAP_BYTES:
            raise ProfileUnusable(f"run {run.stamp}'s profile {path} is not the file its worker kept")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            if sum(map(len, chunks)) > PROFILE_CAP_BYTES:
                raise ProfileUnusable(f"run {run.stamp}'s profile {path} is not the file its worker kept")
    except OSError as exc:
        raise ProfileUnusable(f"run {run.stamp}'s profile {path} is unreadable: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ProfileUnusable(f"run {run.stamp}'s profile {path} changed since it was kept (its SHA-256 is not its row's)")
    return data.decode("utf-8", errors="replace")


def python_stacks(base: PublishedRun, current: PublishedRun, agent: str, task_ref: str) -> tuple[dict, dict] | None:
    """Both runs' Python stacks of one scenario row (the flame graph's input), each held to its
    row's SHA-256 as it is read; None when either is missing or refused."""
    b, c = _profiled(base).get((agent, task_ref)), _profiled(current).get((agent, task_ref))
    if b is None or c is None:
        return None
    try:
        return (
            parse_folded(_kept(base, b.python_profile, b.python_profile_sha256)).stacks,
            parse_folded(_kept(current, c.python_profile, c.python_profile_sha256)).stacks,
        )
    except ProfileUnusable:
        return None


def _view(base: Profile, current: Profile, top: int) -> View:
    """The ``top`` functions whose own cost moved most (either way), largest first."""
    names = set(base.own) | set(current.own)
    changes = [
        FunctionChange(
            name=name,
            base_own=base.own.get(name, 0),
            current_own=current.own.get(name, 0),
            base_inclusive=base.inclusive.get(name, 0),
            current_inclusive=current.inclusive.get(name, 0),
        )
        for name in names
    ]
    changes = [each for each in changes if each.own_change]
    changes.sort(key=lambda each: (-abs(each.own_change), each.name))
    return View(unit=base.unit, base_total=base.total, current_total=current.total, functions=changes[:top])
