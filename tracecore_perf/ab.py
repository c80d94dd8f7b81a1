"""Interleaved A/B (``ab``): the same planned episodes under two interpreters (two TraceCore
installs), then ``compare``.

No second harness: each side is an ordinary run directory built by ``harness.start`` and
then grown chunk by chunk with ``harness.resume``, the harness's own way of finishing a run
(raise the manifest's episode count by a chunk, resume, and the plan runs exactly the
missing episodes: same seeds, same rows, each chunk an attempt in the manifest). The sides
take turns in ABBA order, so slow host drift lands on both alike instead of on whichever
ran second. The command line is ``cli/ab.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgspec

from tracecore_perf import defaults
from tracecore_perf.errors import UsageError
from tracecore_perf.models import ScenarioRow
from tracecore_perf.published import PublishedRun, locate
from tracecore_perf.run import harness
from tracecore_perf.run.rundir import RunDir
from tracecore_perf.settings import RunSettings
from tracecore_perf.verdicts.compare import Settings, compare_runs, environment_differences, environment_mismatch
from tracecore_perf.verdicts.models import Comparison

SIDES = ("A", "B")


class AbOutcome(msgspec.Struct, kw_only=True):
    """``comparison`` when both sides ran to the end; otherwise ``exit_code`` is the stopped
    side's (interrupted or stopped: what ran is kept and resumable in ``run_dirs``)."""

    exit_code: int
    run_dirs: dict[str, Path]
    comparison: Comparison | None = None
    runs: dict[str, PublishedRun] = {}  # both sides' published runs, when both finished
    stopped_side: str | None = None


def chunk_ends(episodes: int, rounds: int) -> list[int]:
    """Cumulative episode counts after each round, as even as whole episodes allow."""
    return sorted({round(episodes * (i + 1) / rounds) for i in range(rounds)})


def run_ab(
    pythons: tuple[str, str],
    scenario: list[ScenarioRow],
    *,
    output_dir: Path,
    settings: RunSettings | None = None,
    rounds: int = defaults.AB_ROUNDS,
    output_cap: int = defaults.OUTPUT_CAP_BYTES,
    compare_settings: Settings | None = None,
    fail_on_regression: bool = False,
    allow_env_difference: bool = False,
    sides: tuple[str, str] = SIDES,
    agents_from: tuple[str | None, str | None] = (None, None),
    between: Callable[[], None] = lambda: None,
    say: Callable[[str], None] = lambda line: None,
) -> AbOutcome:
    """Run ``settings.episodes`` per interpreter into ``output_dir/a`` and ``output_dir/b``
    (``sides``, lower-cased) in ABBA chunks, both sides with the same ``settings`` (default:
    ``ab``'s own episodes and workers), then compare B (current) with A (baseline). Each
    side's agent paths resolve from its ``agents_from`` (default: the working directory).
    ``between`` is called before each chunk and after the last (no episode or agent code of
    ours runs then: a caller checks there what an agent's code may have changed, and raises
    to stop). ``say`` gets one progress line per chunk. Bad input (either interpreter or the scenario)
    raises UsageError before either side starts. With ``settings.instructions`` both sides
    count instructions under Valgrind, and the comparison is on them unless
    ``compare_settings`` names another metric."""
    from tracecore_perf.run.spawn import default_isolation

    if len(pythons) != 2:
        raise UsageError(f"--python must be given exactly twice (A, then B), got {len(pythons)}")
    settings = settings or RunSettings(episodes=defaults.AB_EPISODES, workers=defaults.AB_WORKERS)
    settings = msgspec.structs.replace(settings, isolation=settings.isolation or default_isolation())
    episodes = settings.episodes
    if rounds > episodes:
        raise UsageError(f"--rounds {rounds} is more than --episodes {episodes}")
    checked = [  # both sides valid before either starts
        harness.preflight(scenario, msgspec.structs.replace(settings, python=python), output_dir, where)
        for python, where in zip(pythons, agents_from, strict=True)
    ]
    counted = settings.instructions and (compare_settings is None or compare_settings.metric in (None, "instructions"))
    installed = environment_differences(*(side.interpreter.environment for side in checked))
    if counted and installed and not allow_env_difference:
        raise environment_mismatch(installed)  # before either side spends its episodes

    dirs = {side: output_dir / side.lower() for side in sides}
    run_dirs: dict[str, Path] = {}
    for number, end in enumerate(chunk_ends(episodes, rounds)):
        for side in sides if number % 2 == 0 else sides[::-1]:
            python = pythons[sides.index(side)]
            between()
            say(f"round {number + 1}, {side} ({python}): episodes up to {end}")
            if side not in run_dirs:
                outcome = harness.start(
                    harness.RunOptions(
                        settings=msgspec.structs.replace(settings, episodes=end, python=python),
                        output_dir=str(dirs[side]),
                        scenario=scenario,
                        output_cap=output_cap,
                        agents_from=agents_from[sides.index(side)],
                    ),
                    show_progress=False,
                    input_checked=True,  # preflight held both sides
                )
                run_dirs[side] = Path(outcome.run_dir)
            else:
                run_dir = RunDir(run_dirs[side])
                manifest = run_dir.read_manifest()
                run_dir.write_manifest(
                    msgspec.structs.replace(manifest, settings=msgspec.structs.replace(manifest.settings, episodes=end))
                )
                outcome = harness.resume(run_dir.path, output_cap=output_cap, show_progress=False)
            if outcome.exit_code >= 2:  # interrupted or stopped: what ran is kept and resumable
                return AbOutcome(exit_code=outcome.exit_code, run_dirs=run_dirs, stopped_side=side)

    between()
    runs = {side: locate(run_dirs[side], dirs[side]) for side in sides}
    comparison = compare_runs(
        runs[sides[0]],
        runs[sides[1]],
        compare_settings,
        fail_on_regression=fail_on_regression,
        interpreter_ab=True,
        allow_env_difference=allow_env_difference,
    )
    return AbOutcome(exit_code=0 if comparison.ok else 1, run_dirs=run_dirs, comparison=comparison, runs=runs)
