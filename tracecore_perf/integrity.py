"""The evidence check: is what lies in the run directory what the harness put there?

Episodes run as the same user as the harness, so a hostile one can append to, rewrite or
delete ``series.jsonl`` and ``samples.jsonl``, or add and delete TraceCore artifacts in
``.agent_bench/runs``. After the batch, before anything is published:

- each JSON-lines file is read back and every line matched against the keyed digests the
  writer kept; lines nobody of ours wrote are set aside under ``tainted/``, and a file with
  foreign or missing lines, or replaced or deleted, is rewritten from the writer's private
  copy (every line of which is checked against its digest too);
- every artifact file must belong to a row (the worker placed it); strangers are set aside,
  and an artifact a row points to must still be there.

Whatever it finds makes the run ``tainted`` (published with an :class:`Integrity` block
saying what, exit 4), never published as fact.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from tracecore_perf.models import Integrity
from tracecore_perf.rundir import RunDir
from tracecore_perf.writer import Ledger, Ledgers

TAINTED = "tainted"
ORPHANED = "orphaned-artifacts"


def check_run(run_dir: RunDir, ledgers: Ledgers, artifact_check: Integrity, *, write_failed: bool = False) -> Integrity:
    """Both streams, plus what ``check_artifacts`` found earlier; repairs the streams.
    ``write_failed``: the writer itself was cut off mid-line (a full disk), so a torn last
    line is the harness's own and is dropped without blame."""
    report = Integrity(
        problems=list(artifact_check.problems),
        foreign_artifacts=artifact_check.foreign_artifacts,
        missing_artifacts=artifact_check.missing_artifacts,
    )
    tainted = run_dir.path / TAINTED
    report.foreign_series_lines, report.missing_series_rows = _check_stream(
        ledgers.series, tainted, report.problems, "rows", write_failed
    )
    report.foreign_sample_lines, report.missing_samples = _check_stream(
        ledgers.samples, tainted, report.problems, "samples", write_failed
    )
    report.clean = not report.problems
    return report


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _check_stream(ledger: Ledger, tainted: Path, problems: list[str], what: str, write_failed: bool) -> tuple[int, int]:
    name = ledger.path.name
    ledger.copy.flush()
    foreign, missing, torn = _count(ledger)
    replaced = _identity(ledger.path) != ledger.identity
    if torn and write_failed and not (foreign or missing or replaced):
        _restore(ledger)  # our own half-written line: dropped, nobody to blame
        return 0, 0
    foreign += torn
    if not (foreign or missing or replaced):
        return 0, 0
    tainted.mkdir(exist_ok=True)
    if replaced:
        problems.append(f"{name} was replaced or deleted during the run")
    if foreign:
        problems.append(f"{name}: {foreign} lines the harness did not write (set aside in {TAINTED}/{name})")
    if missing:
        problems.append(f"{name}: {missing} {what} the harness wrote were missing or altered")
    if ledger.path.exists():
        _set_aside_foreign(ledger, tainted / name)
    lost = _restore(ledger)
    if lost:
        problems.append(f"{name}: {lost} {what} could not be restored (the harness's own copy was altered too)")
    return foreign, missing


def _lines(path: Path):
    with path.open("rb") as fh:
        yield from fh


def _count(ledger: Ledger) -> tuple[int, int, bool]:
    """Lines in the file nobody of ours wrote, lines of ours not in it, and whether it ends
    in half a line (every line the writer writes ends in a newline)."""
    expected = Counter(ledger.digests)
    foreign = 0
    torn = False
    if ledger.path.is_file():
        for line in _lines(ledger.path):
            if not line.endswith(b"\n"):
                torn = True
                continue
            digest = ledger.digest(line)
            if expected[digest] > 0:
                expected[digest] -= 1
            else:
                foreign += 1
    return foreign, sum(expected.values()), torn


def _set_aside_foreign(ledger: Ledger, aside: Path) -> None:
    expected = Counter(ledger.digests)
    with aside.open("ab") as other:
        for line in _lines(ledger.path):
            digest = ledger.digest(line)
            if line.endswith(b"\n") and expected[digest] > 0:
                expected[digest] -= 1
            else:
                other.write(line if line.endswith(b"\n") else line + b"\n")


def _restore(ledger: Ledger) -> int:
    """Rewrite the file from the writer's private copy, keeping only lines that match their
    digests. Returns how many of the harness's lines could not be restored."""
    expected = Counter(ledger.digests)
    tmp = ledger.path.with_name(f".{ledger.path.name}.restored")
    ledger.copy.seek(0)
    with tmp.open("wb") as clean:
        for line in ledger.copy:
            digest = ledger.digest(line)
            if line.endswith(b"\n") and expected[digest] > 0:
                expected[digest] -= 1
                clean.write(line)
    os.replace(tmp, ledger.path)
    return sum(expected.values())


def check_artifacts(run_dir: RunDir, run_ids: set[str], *, interrupted: bool) -> Integrity:
    """Every file in ``.agent_bench/runs`` must be the artifact of a row, and every row's
    artifact must be there. Strangers are moved out (so TraceCore's metrics count exactly
    this run's episodes): to ``orphaned-artifacts/`` when the run was interrupted (episodes
    killed in flight after their artifact was placed, not tampering), else to
    ``tainted/artifacts/``."""
    report = Integrity()
    root = run_dir.runs_root
    if not root.is_dir():
        report.problems.append(".agent_bench/runs was deleted during the run")
        root.mkdir(parents=True, exist_ok=True)
    present: set[str] = set()
    strangers: list[os.DirEntry] = []
    with os.scandir(root) as entries:
        for entry in entries:
            run_id = entry.name.removesuffix(".json")
            if entry.name.endswith(".json") and run_id in run_ids and entry.is_file(follow_symlinks=False):
                present.add(run_id)
            else:
                strangers.append(entry)
    if strangers:
        aside = run_dir.path / (ORPHANED if interrupted else f"{TAINTED}/artifacts")
        aside.mkdir(parents=True, exist_ok=True)
        for entry in strangers:
            os.replace(entry.path, aside / entry.name)
        if not interrupted:
            report.foreign_artifacts = len(strangers)
            report.problems.append(
                f".agent_bench/runs: {len(strangers)} files no episode of this run produced (set aside in {TAINTED}/artifacts)"
            )
    report.missing_artifacts = len(run_ids - present)
    if report.missing_artifacts:
        report.problems.append(f".agent_bench/runs: {report.missing_artifacts} artifacts of this run's episodes are gone")
    report.clean = not report.problems
    return report
