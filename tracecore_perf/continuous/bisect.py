"""``bisect GOOD BAD``: the first commit of a TraceCore history whose instruction-counted rows
cost past the margin, in about log2(N) builds.

``continuous`` for more than two revisions, built and judged the same way:

1. ``plan``: the repository, GOOD and BAD (each must exist and be TraceCore, GOOD on BAD's
   first-parent line), the line of commits between them, the output folder; bad input is one
   ``UsageError`` before anything is built or written;
2. BAD built first with ``build.build_side`` and unconstrained (as ``continuous`` builds HEAD),
   the versions it resolves to frozen into ``constraints.txt``; GOOD and every revision tested
   after it installed with that file (or all with ``--constraints``);
3. each revision's planned episodes counted under Valgrind once, by the harness's own
   ``harness.start`` (what ``ab`` and ``continuous`` grow chunk by chunk), agents resolved from
   the revision's own tree: counts are deterministic to about 0.05%, so one run a revision is
   enough, and no revision is run twice;
4. each revision's rows compared with GOOD's by ``verdicts.compare.compare_runs`` (the
   instruction comparison ``continuous`` gives: the noise floor and margin of
   ``defaults.COMPARE_INSTRUCTIONS``); a revision is bad when any row is a regression;
5. BAD not worse than GOOD: nothing to bisect (exit 1). Else a binary search on the line; a
   revision that does not build is skipped (as ``git bisect skip``) and the nearest other one
   tested. The answer is the first bad commit; its first parent (the last good) and it are
   "the step", both runs kept for ``explain``.

``bisect.json`` is written after every tested revision, so an interrupted bisect leaves what
it learned.
"""

from __future__ import annotations

import contextlib
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import msgspec

from tracecore_perf.ab import AbOutcome
from tracecore_perf.continuous import _check_measured
from tracecore_perf.continuous.build import (
    BuiltSide,
    build_side,
    changed,
    check_pip,
    check_repository,
    check_tracecore,
    claim,
    freeze,
    git,
    remove,
    resolve,
    stamp,
)
from tracecore_perf.errors import ExitCode, UsageError
from tracecore_perf.files import write_atomic
from tracecore_perf.models import ScenarioRow
from tracecore_perf.published import PublishedRun, locate
from tracecore_perf.run import harness
from tracecore_perf.run.checks import check_writable_dir
from tracecore_perf.settings import RunSettings
from tracecore_perf.verdicts.compare import Settings, compare_runs
from tracecore_perf.verdicts.models import Comparison

RECORD = "bisect.json"
SIDE_LENGTH = 12  # each revision's folders are named by this many hex digits of its commit: the same length for all

Verdict = Literal["good", "bad", "skipped", "reference"]


class Plan(msgspec.Struct, kw_only=True):
    """What ``bisect`` was asked for, checked: GOOD and BAD as given and as commits, and the
    first-parent line from GOOD (excluded) to BAD (included), oldest first."""

    repo: Path
    refs: dict[str, str]  # "good", "bad" -> as given
    good: tuple[str, str]  # (commit id, subject)
    line: list[tuple[str, str]]  # (commit id, subject); the last is BAD
    output_dir: Path


class Tested(msgspec.Struct, kw_only=True):
    """One revision built (or not) and, when built, counted and judged against GOOD."""

    commit: str
    subject: str
    position: int  # in the line: 0 is GOOD, N is BAD
    verdict: Verdict  # "reference" for GOOD itself
    build: BuiltSide | None = None
    run_dir: str | None = None  # its published run's working directory
    published: str | None = None  # the folder holding its published run (perf-*-<stamp>.json)
    ratios: dict[str, float | None] = {}  # "agent on task" -> instructions per episode against GOOD's
    regressions: list[str] = []  # the rows past the margin
    comparison: Comparison | None = None
    skipped_because: str | None = None  # a revision that did not build, or had no row to compare


class BisectRecord(msgspec.Struct, kw_only=True):
    """``bisect.json``: the line searched, every revision tested in the order it was, the
    answer and the step's runs."""

    repo: str
    good: str
    bad: str
    refs: dict[str, str]
    line: list[list[str]]  # [commit, subject] from GOOD's child to BAD, oldest first
    margin: float
    noise: float
    constraints: str
    constraints_from: str  # "--constraints" or "bad"
    also_installed: list[str]
    tested: list[Tested]  # in build order: BAD, GOOD, then the search
    builds: int
    build_s: float
    episodes_s: float
    exit_code: int
    first_bad: str | None = None
    last_good: str | None = None  # the first bad commit's first parent (GOOD, or a tested revision)
    candidates: list[str] = []  # when skipped revisions leave more than one: the first bad is one of these
    step: dict[str, str] = {}  # "last_good", "first_bad" -> each one's run directory (run-<stamp>)
    explain: str | None = None  # the command that explains the step
    stopped: str | None = None  # why the bisect had to stop before an answer
    changed: list[str] = []  # what of a revision's environment or tree changed while its episodes ran


class RevisionChanged(Exception):
    def __init__(self, paths: list[str]) -> None:
        super().__init__(f"{len(paths)} paths changed, first {paths[0]}")
        self.paths = paths


def side_name(commit: str) -> str:
    return commit[:SIDE_LENGTH]


def plan(repo: Path, good: str, bad: str, output_dir: Path) -> Plan:
    check_pip()
    top = check_repository(repo)
    good_commit = resolve(top, good)
    bad_commit = resolve(top, bad)
    check_tracecore(top, good, good_commit[0])
    check_tracecore(top, bad, bad_commit[0])
    if good_commit[0] == bad_commit[0]:
        raise UsageError(f"GOOD {good} and BAD {bad} are the same commit: nothing to bisect")
    if git(top, "merge-base", "--is-ancestor", good_commit[0], bad_commit[0]).returncode != 0:
        raise UsageError(f"GOOD {good} is not an ancestor of BAD {bad}: bisect searches the history from GOOD to BAD")
    listed = git(top, "log", "--first-parent", "--reverse", "--format=%H %s", f"{good_commit[0]}..{bad_commit[0]}")
    if listed.returncode != 0:
        raise UsageError(f"cannot list the commits from {good} to {bad}: {listed.stderr.strip()[:200]}")
    line = [tuple(text.split(" ", 1)) if " " in text else (text, "") for text in listed.stdout.splitlines() if text]
    first_parent = git(top, "rev-parse", "--verify", "--quiet", f"{line[0][0]}^1").stdout.strip() if line else ""
    if first_parent != good_commit[0]:
        raise UsageError(
            f"GOOD {good} is an ancestor of BAD {bad} but not on its first-parent line (it came in through a merge): "
            "give a GOOD from BAD's first-parent history, such as the merge's first parent"
        )
    check_writable_dir(output_dir)
    output_dir = claim(output_dir)  # last: bad input above leaves no folder behind
    return Plan(
        repo=top,
        refs={"good": good, "bad": bad},
        good=good_commit,
        line=[(commit, subject) for commit, subject in line],
        output_dir=output_dir,
    )


def next_probe(low: int, high: int, skipped: set[int]) -> int | None:
    """The position to test between the last known good (``low``) and the first known bad
    (``high``): the middle, or the untested position nearest it when the middle did not build."""
    middle = (low + high) // 2
    untested = [position for position in range(low + 1, high) if position not in skipped]
    return min(untested, key=lambda position: (abs(position - middle), position)) if untested else None


def label(agent: str, task_ref: str) -> str:
    return f"{agent} on {task_ref}"


def run_bisect(
    request: Plan,
    scenario: list[ScenarioRow],
    *,
    settings: RunSettings,
    base_python: str,
    constraints: Path | None = None,
    also: tuple[str, ...] = (),
    compare_settings: Settings | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> BisectRecord:
    """Search ``request.line`` for its first bad commit (see the module's doc); ``say`` gets a
    line per step. Returns the record, also written to ``bisect.json``."""
    out = request.output_dir  # claimed by plan(): new or empty, ours alone
    shared = out / "constraints.txt"
    settings = msgspec.structs.replace(settings, instructions=True)
    resolved = (compare_settings or Settings()).resolved(counted=True)
    compare_with = Settings("instructions", resolved.alpha, resolved.noise, resolved.margin, resolved.drift)
    positions = [request.good, *request.line]  # 0 is GOOD, len - 1 is BAD
    bad_at = len(positions) - 1
    record = BisectRecord(
        repo=str(request.repo),
        good=request.good[0],
        bad=request.line[-1][0],
        refs=request.refs,
        line=[[commit, subject] for commit, subject in request.line],
        margin=compare_with.margin,
        noise=compare_with.noise,
        constraints=str(shared),
        constraints_from="--constraints" if constraints is not None else "bad",
        also_installed=list(also),
        tested=[],
        builds=0,
        build_s=0.0,
        episodes_s=0.0,
        exit_code=ExitCode.OK,
    )
    runs: dict[int, PublishedRun] = {}
    run_dirs: dict[int, str] = {}  # each counted revision's run directory (run-<stamp>)

    def save() -> None:
        write_atomic(out / RECORD, msgspec.json.format(msgspec.json.encode(record), indent=2) + b"\n")

    def build(position: int) -> BuiltSide:
        commit, subject = positions[position]
        ref = request.refs["bad"] if position == bad_at else request.refs["good"] if position == 0 else commit
        given = constraints if constraints is not None else (shared if shared.is_file() else None)
        say(f"building {side_name(commit)} ({position}/{bad_at}: {subject})")
        started = time.monotonic()
        try:
            built = build_side(
                side_name(commit), request.repo, ref, commit, subject, out, base_python=base_python, constraints=given, also=also
            )
        finally:
            record.build_s = round(record.build_s + time.monotonic() - started, 2)
            record.builds += 1
        if given is None:  # the first build, BAD's: its resolution holds every other revision
            freeze(built, shared, out / "logs" / f"{built.side}-build.log")
        say(f"built {built.side} in {built.build_s:.0f} s")
        return built

    def count(position: int, built: BuiltSide) -> PublishedRun:
        """One run of the planned episodes on the built revision, counted; the revision's
        environment and tree looked at after it (an agent's module code could rewrite them)."""
        before = stamp(built)
        folder = out / "runs" / built.side
        started = time.monotonic()
        say(f"counting {built.side}: {settings.episodes} episodes")
        try:
            outcome = harness.start(
                harness.RunOptions(
                    settings=msgspec.structs.replace(settings, python=built.python),
                    output_dir=str(folder),
                    scenario=scenario,
                    agents_from=built.tree,
                ),
                show_progress=False,
            )
        finally:
            record.episodes_s = round(record.episodes_s + time.monotonic() - started, 2)
        moved = changed(before, stamp(built))
        if moved:
            raise RevisionChanged(moved)
        if outcome.exit_code >= ExitCode.USAGE:  # stopped, interrupted, tainted: no verdict from it
            record.exit_code = outcome.exit_code
            why = f": {outcome.stopped}" if outcome.stopped else ""
            record.stopped = f"the run of {built.side} stopped (exit {outcome.exit_code}){why}"
            raise _Stop
        run = locate(Path(outcome.run_dir), folder)
        _check_measured({built.side: built}, AbOutcome(exit_code=0, run_dirs={}, runs={built.side: run}))
        runs[position], run_dirs[position] = run, str(Path(outcome.run_dir).resolve())
        return run

    def judge(position: int, built: BuiltSide, run: PublishedRun) -> Tested:
        commit, subject = positions[position]
        comparison = compare_runs(
            runs[0], run, compare_with, fail_on_regression=True, interpreter_ab=True, allow_env_difference=True
        )
        tested = Tested(
            commit=commit,
            subject=subject,
            position=position,
            verdict="bad" if not comparison.ok else "good",
            build=built,
            run_dir=run_dirs[position],
            published=str(run.output_dir),
            ratios={label(row.agent, row.task_ref): row.ratio.value for row in comparison.rows},
            regressions=[label(row.agent, row.task_ref) for row in comparison.rows if row.regression],
            comparison=comparison,
        )
        if not comparison.rows:
            tested.verdict, tested.skipped_because = "skipped", "no row of it could be compared with GOOD's"
        return tested

    moved: list[str] = []
    try:
        # BAD first, unconstrained (continuous's HEAD), then GOOD: a failure of either is bad
        # input, and nothing is left built
        first: dict[int, BuiltSide] = {}
        try:
            for position in (bad_at, 0):
                first[position] = build(position)
        except BaseException:
            for built in first.values():
                remove(Path(built.tree))
                remove(Path(built.env))
            for folder in (out / "src", out / "envs"):
                with contextlib.suppress(OSError):
                    folder.rmdir()
            with contextlib.suppress(OSError):
                shared.unlink()
            raise
        good_run = count(0, first[0])
        record.tested.append(
            Tested(
                commit=positions[0][0],
                subject=positions[0][1],
                position=0,
                verdict="reference",
                build=first[0],
                run_dir=run_dirs[0],
                published=str(good_run.output_dir),
            )
        )
        bad = judge(bad_at, first[bad_at], count(bad_at, first[bad_at]))
        record.tested.insert(0, bad)
        save()
        say(f"{side_name(bad.commit)} (BAD): {bad.verdict}")
        if bad.verdict != "bad":
            record.exit_code = ExitCode.FAILED
            record.stopped = (
                f"BAD {request.refs['bad']} is not worse than GOOD {request.refs['good']} past the margin: nothing to bisect"
                if bad.verdict == "good"
                else f"BAD {request.refs['bad']}: {bad.skipped_because}"
            )
            save()
            return record

        low, high, skipped = 0, bad_at, set()
        while (position := next_probe(low, high, skipped)) is not None:
            try:
                built = build(position)
            except UsageError as exc:  # a revision that does not build: skipped, as git bisect skip
                commit, subject = positions[position]
                skipped.add(position)
                record.tested.append(
                    Tested(commit=commit, subject=subject, position=position, verdict="skipped", skipped_because=str(exc))
                )
                say(f"{side_name(commit)} skipped: {exc}")
                save()
                continue
            tested = judge(position, built, count(position, built))
            record.tested.append(tested)
            save()
            say(f"{built.side} ({position}/{bad_at}): {tested.verdict}")
            if tested.verdict == "skipped":
                skipped.add(position)
            elif tested.verdict == "bad":
                high = position
            else:
                low = position

        if high - low == 1:
            record.first_bad, record.last_good = positions[high][0], positions[low][0]
            record.step = {"last_good": run_dirs[low], "first_bad": run_dirs[high]}
            record.explain = f"python -m tracecore_perf explain {shlex.quote(run_dirs[low])} {shlex.quote(run_dirs[high])}"
            record.exit_code = ExitCode.OK
        else:  # skipped revisions between the last good and the first bad: any of them, or the first bad
            record.candidates = [positions[p][0] for p in range(low + 1, high + 1)]
            record.exit_code = ExitCode.FAILED
            record.stopped = (
                f"revisions that could not be judged lie between the last good {side_name(positions[low][0])} and "
                f"the first bad tested {side_name(positions[high][0])}: the first bad commit is one of {len(record.candidates)}"
            )
    except RevisionChanged as exc:
        moved = exc.paths
        record.exit_code = ExitCode.TAINTED
        record.changed = moved
        record.stopped = "a revision's environment or tree changed while its episodes ran: an agent's code wrote to it"
    except _Stop:
        pass
    save()
    return record


class _Stop(Exception):
    """A revision's run stopped (exit code and reason in the record)."""


def step_runs(record: BisectRecord) -> tuple[PublishedRun, PublishedRun] | None:
    """The step's two published runs: the last good's and the first bad's."""
    if not record.step:
        return None
    return locate(Path(record.step["last_good"])), locate(Path(record.step["first_bad"]))


def render(record: BisectRecord) -> str:
    """The table of every build, in the line's order, and the answer, as text."""
    tested = sorted(record.tested, key=lambda t: t.position)
    rows: list[str] = []
    for t in tested:
        for name in t.ratios:
            if name not in rows:
                rows.append(name)
    order = {id(t): number for number, t in enumerate(record.tested, 1)}
    n = len(record.line)
    header = ["build", "position", "commit", "verdict", *[f"r{i}" for i in range(1, len(rows) + 1)], "subject"]
    table = [header]
    for t in tested:
        ratios = []
        for name in rows:
            value = t.ratios.get(name)
            ratios.append("-" if value is None else f"x{value:.4f}{'!' if name in t.regressions else ''}")
        if t.verdict == "reference":
            ratios = ["x1 (GOOD)" if i == 0 else "" for i in range(len(rows))]
        table.append([str(order[id(t)]), f"{t.position}/{n}", side_name(t.commit), t.verdict, *ratios, t.subject[:60]])
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = [f"bisect {record.refs['good']}..{record.refs['bad']}: {n} commits on the first-parent line, {record.builds} builds"]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in table]
    lines += [f"r{i} = {name}" for i, name in enumerate(rows, 1)]
    lines.append(
        f"instructions per episode against GOOD's; bad = a row past the margin (x{1 + record.margin:g}, marked !); "
        f"changes under x{1 + record.noise:g} are no change"
    )
    if record.first_bad:
        subject = next((s for c, s in record.line if c == record.first_bad), "")
        lines.append(f"first bad commit: {record.first_bad} ({subject})")
        lines.append(f"last good (its first parent): {record.last_good}")
        lines.append(f"the step's runs: {record.step['last_good']} -> {record.step['first_bad']}")
        lines.append(f"explain it: {record.explain}")
    elif record.candidates:
        lines.append(f"no single first bad commit: {record.stopped}:")
        lines += [f"  {commit}" for commit in record.candidates]
    elif record.stopped:
        lines.append(f"no answer: {record.stopped}")
    return "\n".join(lines) + "\n"
