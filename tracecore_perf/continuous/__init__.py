"""``continuous BASE HEAD``: two revisions of a TraceCore checkout, built the same way, their
episodes counted side by side, and the verdict (asv's ``continuous``, on instruction counts).

The steps, each its own function so a reader can follow one run of the gate:

1. ``plan``: the repository, both revisions (each must exist and be TraceCore), the output
   folder; bad input is one ``UsageError`` before anything is built or written;
2. ``build.build_side`` for HEAD, then for BASE with the dependencies HEAD resolved to (or
   with ``--constraints``): two environments that differ in the revision alone;
3. ``ab.run_ab``: the same planned episodes under both, interleaved in ABBA chunks, each
   side's agent paths resolved from its own tree, every episode counted under Valgrind;
4. the comparison, refused where the environments still differ (only the revisions' own
   requirements can make them), and ``continuous.json``: what was built, how long each
   part took, and the comparison.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from tracecore_perf import defaults
from tracecore_perf.ab import AbOutcome, run_ab
from tracecore_perf.continuous.build import (
    BuiltSide,
    build_side,
    changed,
    check_pip,
    check_repository,
    check_tracecore,
    claim,
    freeze,
    remove,
    resolve,
    stamp,
)
from tracecore_perf.errors import ExitCode, UsageError
from tracecore_perf.files import write_atomic
from tracecore_perf.models import ScenarioRow
from tracecore_perf.run.checks import check_writable_dir
from tracecore_perf.settings import RunSettings
from tracecore_perf.verdicts.compare import Settings
from tracecore_perf.verdicts.models import Comparison

SIDES = ("base", "head")  # the same length: every path an episode sees is the same length on both sides
RECORD = "continuous.json"


class Plan(msgspec.Struct, kw_only=True):
    """What ``continuous`` was asked for, checked: the repository's top and each side's
    revision as given and as a commit."""

    repo: Path
    refs: dict[str, str]
    commits: dict[str, tuple[str, str]]  # side -> (commit id, subject)
    output_dir: Path


class ContinuousRecord(msgspec.Struct, kw_only=True):
    """``continuous.json``: the two builds, where each side's runs went, the time each part
    took, and the comparison (None when a side stopped)."""

    repo: str
    sides: list[BuiltSide]
    constraints: str  # the constraints file both sides were installed with
    constraints_from: str  # "--constraints" or the side whose resolution it is
    also_installed: list[str]  # --with: requirements installed beside the revision on both sides
    run_dirs: dict[str, str]
    build_s: float  # both environments
    episodes_s: float  # both sides' episodes, interleaved, counted
    exit_code: int
    comparison: Comparison | None = None
    # what of either side's environment or tree changed while its episodes ran (an agent's
    # module code): the verdict is withheld and the exit is 4 (tainted)
    changed: list[str] = []


class SideChanged(Exception):
    """A side's environment or tree changed after it was built: ``paths``."""

    def __init__(self, paths: list[str]) -> None:
        super().__init__(f"{len(paths)} paths changed, first {paths[0]}")
        self.paths = paths


def plan(repo: Path, base: str, head: str, output_dir: Path) -> Plan:
    check_pip()
    top = check_repository(repo)
    commits = {}
    for side, ref in zip(SIDES, (base, head), strict=True):
        commits[side] = resolve(top, ref)
        check_tracecore(top, ref, commits[side][0])
    check_writable_dir(output_dir)
    output_dir = claim(output_dir)  # last: bad input above leaves no folder behind
    return Plan(repo=top, refs=dict(zip(SIDES, (base, head), strict=True)), commits=commits, output_dir=output_dir)


def run_continuous(
    request: Plan,
    scenario: list[ScenarioRow],
    *,
    settings: RunSettings,
    rounds: int = defaults.CONTINUOUS_ROUNDS,
    base_python: str,
    constraints: Path | None = None,
    also: tuple[str, ...] = (),
    compare_settings: Settings | None = None,
    fail_on_regression: bool = False,
    say: Callable[[str], None] = lambda line: None,
) -> tuple[ContinuousRecord, AbOutcome]:
    """Build both revisions, run ``settings`` on both (always counted: ``instructions``),
    compare head with base; ``also``: requirements installed beside the revision on both
    sides (one it needs but does not declare). ``say`` gets a line per step.

    Both sides are built by one builder from one constraints file, so their environments
    can differ only where the revisions' own requirements do (a dependency added, or a
    range that excludes the other side's version): that is part of the change under test,
    so the verdict is given, and the comparison names each difference (ENVIRONMENT
    MISMATCH)."""
    out = request.output_dir  # claimed by plan(): new or empty, ours alone
    shared = out / "constraints.txt"
    built: dict[str, BuiltSide] = {}
    started = time.monotonic()
    try:
        for side in ("head", "base"):  # head first: its resolution is what base is held to
            commit, subject = request.commits[side]
            say(f"building {side} = {request.refs[side]} ({commit[:12]}: {subject})")
            given = constraints if constraints is not None else (shared if built else None)
            built[side] = build_side(
                side,
                request.repo,
                request.refs[side],
                commit,
                subject,
                out,
                base_python=base_python,
                constraints=given,
                also=also,
            )
            if constraints is None and side == "head":
                freeze(built[side], shared, out / "logs" / "head-build.log")
            say(f"built {side} in {built[side].build_s:.0f} s: {built[side].python}")
    except BaseException:
        for side in built.values():  # nothing half-built left behind, the sides already built included
            remove(Path(side.tree))
            remove(Path(side.env))
        for folder in (out / "src", out / "envs"):
            with contextlib.suppress(OSError):
                folder.rmdir()  # empty once the sides are gone
        raise
    build_s = time.monotonic() - started
    if constraints is not None:
        shared.write_text(constraints.read_text())

    # Both sides as built, before any agent's module runs (ab's checks load every agent):
    # looked at again before each chunk of episodes and after the last.
    stamps = {side: stamp(built[side]) for side in SIDES}

    def unchanged() -> None:
        moved = [path for side in SIDES for path in changed(stamps[side], stamp(built[side]))]
        if moved:
            raise SideChanged(moved)

    started = time.monotonic()
    moved: list[str] = []
    try:
        outcome = run_ab(
            (built["base"].python, built["head"].python),
            scenario,
            output_dir=out,
            settings=msgspec.structs.replace(settings, instructions=True),
            rounds=rounds,
            compare_settings=compare_settings,
            fail_on_regression=fail_on_regression,
            allow_env_difference=True,  # only the revisions' own requirements can differ (above)
            sides=SIDES,
            agents_from=(built["base"].tree, built["head"].tree),
            between=unchanged,
            say=say,
        )
    except SideChanged as exc:
        moved = exc.paths
        run_dirs = {side: path for side in SIDES for path in sorted((out / side).glob("run-*"))[-1:]}
        outcome = AbOutcome(exit_code=ExitCode.TAINTED, run_dirs=run_dirs)
    episodes_s = time.monotonic() - started
    if outcome.runs:
        _check_measured(built, outcome)
    record = ContinuousRecord(
        repo=str(request.repo),
        sides=[built[side] for side in SIDES],
        constraints=str(shared),
        constraints_from="--constraints" if constraints is not None else "head",
        also_installed=list(also),
        run_dirs={side: str(path) for side, path in outcome.run_dirs.items()},
        build_s=round(build_s, 2),
        episodes_s=round(episodes_s, 2),
        exit_code=outcome.exit_code,
        comparison=outcome.comparison,
        changed=moved,
    )
    write_atomic(out / RECORD, msgspec.json.format(msgspec.json.encode(record), indent=2) + b"\n")
    return record, outcome


def _check_measured(built: dict[str, BuiltSide], outcome: AbOutcome) -> None:
    """Each side's published run must have imported TraceCore from the environment built for
    it (the build checked this before any episode; the manifest says what the episodes did)."""
    for side, run in outcome.runs.items():
        imported = run.manifest().interpreter.tracecore_dir
        if imported and Path(imported).resolve() != Path(built[side].tracecore_dir).resolve():
            raise UsageError(
                f"the {side} side's episodes imported TraceCore from {imported}, not from the revision it built "
                f"({built[side].tracecore_dir})"
            )
