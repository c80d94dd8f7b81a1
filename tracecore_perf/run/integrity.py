"""The evidence check: is what lies in the run directory what the harness put there?

Episodes run as the same user as the harness, so a hostile one can append to, rewrite or
delete ``series.jsonl`` and ``samples.jsonl``, add and delete TraceCore artifacts in
``.agent_bench/runs``, or plant files where the check itself wants to write. After the
batch (and after every process an episode left behind is dead), before anything is
published:

- each JSON-lines file is read back and every line matched against the keyed digests the
  writer kept; lines nobody of ours wrote are set aside, and a file with foreign or missing
  lines, or replaced or deleted, is rewritten from the writer's private copy (every line of
  which is checked against its digest too);
- every artifact file must belong to a row (the worker placed it) and hold the bytes the
  worker placed (the row carries their SHA-256, and the row is itself under the ledger's
  keyed digest); strangers and changed artifacts are set aside, and an artifact a row points
  to must still be there;
- nothing but a regular file may stand at a name the run is about to be published to (a
  link would be replaced, never written through; it is set aside all the same).

What is set aside goes to ``run-<stamp>/tainted/`` (or a fresh ``tainted-*`` folder when that
name is taken by something the harness did not make); the ``Integrity`` block names it.
Whatever the check finds, and a check that cannot complete, makes the run ``tainted``
(exit 4): never published as fact.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from tracecore_perf.files import foreign_at, sha256_of
from tracecore_perf.models import Integrity
from tracecore_perf.run.rundir import MANIFEST, RunDir, lines
from tracecore_perf.run.writer import Ledger, Ledgers

TAINTED = "tainted"
# No worker places a larger artifact (episode_worker.ARTIFACT_CAP_BYTES: it refuses one).
MAX_ARTIFACT_BYTES = 64 * 1024 * 1024
ORPHANED = "orphaned-artifacts"


class _Aside:
    """The folder for what the check sets aside, made on first use: ``name`` when it is a
    real directory (an earlier attempt's) or free, else a fresh ``name-*`` folder."""

    def __init__(self, parent: Path, name: str, made: str | None = None) -> None:
        self.parent, self.name = parent, name
        self.path: Path | None = Path(made) if made else None  # one the check already made

    def folder(self) -> Path:
        if self.path is None:
            wanted = self.parent / self.name
            try:
                os.mkdir(wanted)
                self.path = wanted
            except FileExistsError:
                if stat.S_ISDIR(os.lstat(wanted).st_mode):
                    self.path = wanted
                else:  # a file or a link planted in its place
                    self.path = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=self.parent))
        return self.path

    def open_append(self, name: str):
        """A file in the folder to append to, never through a link planted there."""
        fd = os.open(self.folder() / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        return open(fd, "ab")  # noqa: SIM115 - the caller closes it

    def move_in(self, source: str, name: str) -> None:
        target = self.folder() / name
        if os.path.lexists(target):  # something is in the way: keep both
            target = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.folder())) / name
        os.replace(source, target)


def set_aside_planted(run_dir: RunDir, paths: list[Path]) -> list[str]:
    """Anything but a regular file at ``paths`` (a FIFO, a link) moved into the run's tainted
    folder, never opened; returns a problem line for each."""
    problems = []
    aside = _Aside(run_dir.path, TAINTED)
    for path in paths:
        found = foreign_at(path)
        if found is not None:
            aside.move_in(str(path), path.name)
            problems.append(f"{path.name}: {found} stood in its place (set aside)")
    return problems


def check_run(
    run_dir: RunDir,
    ledgers: Ledgers,
    artifact_check: Integrity,
    *,
    write_failed: bool = False,
    published: Iterable[Path] = (),
) -> Integrity:
    """Both streams, plus what ``check_artifacts`` found earlier; repairs the streams; sets
    aside anything but a regular file at the names the run is about to be ``published`` to.
    ``write_failed``: the writer itself was cut off mid-line (a full disk), so a torn last
    line is the harness's own and is dropped without blame."""
    report = Integrity(
        problems=list(artifact_check.problems),
        foreign_artifacts=artifact_check.foreign_artifacts,
        missing_artifacts=artifact_check.missing_artifacts,
        altered_artifacts=artifact_check.altered_artifacts,
        set_aside=artifact_check.set_aside,
    )
    _check_run_dir(run_dir, report)
    aside = _Aside(run_dir.path, TAINTED, made=artifact_check.set_aside)
    if os.path.lexists(run_dir.logs) and not stat.S_ISDIR(os.lstat(run_dir.logs).st_mode):  # a link in its place
        aside.move_in(str(run_dir.logs), "logs-planted")
        run_dir.logs.mkdir()
        report.problems.append("logs was replaced during the run (set aside)")
    for path in [*published, run_dir.path / MANIFEST]:
        try:
            found = foreign_at(path)
            if found is not None:
                aside.move_in(str(path), path.name)
                report.problems.append(f"{path.name}: {found} stood where the run publishes (set aside)")
        except OSError as exc:
            report.problems.append(f"{path.name}: the check could not complete ({exc})")
    for ledger, what in ((ledgers.series, "rows"), (ledgers.samples, "samples")):
        try:
            foreign, missing = _check_stream(ledger, aside, report.problems, what, write_failed)
        except OSError as exc:
            report.problems.append(f"{ledger.path.name}: the check could not complete ({exc}); restored from the harness's copy")
            foreign = missing = 0
            try:
                _restore(ledger)
            except OSError as again:
                report.problems.append(f"{ledger.path.name}: not restored either ({again}); its rows are not to be trusted")
        if what == "rows":
            report.foreign_series_lines, report.missing_series_rows = foreign, missing
        else:
            report.foreign_sample_lines, report.missing_samples = foreign, missing
    if aside.path is not None:
        report.set_aside = str(aside.path)
    report.clean = not report.problems
    return report


def _check_run_dir(run_dir: RunDir, report: Integrity) -> None:
    """The run directory must still be the one the run made: an episode may have moved it away
    and put a link to a folder of yours in its place, which the harness would then write
    through. If so, what stands at its name is set aside beside it, a fresh run directory is
    made there, and the rows are restored into it from the harness's own copies."""
    if run_dir.identity is None or _identity(run_dir.path) == run_dir.identity and not run_dir.path.is_symlink():
        return
    where = "nothing"
    if os.path.lexists(run_dir.path):
        where = tempfile.mkdtemp(prefix=f"{run_dir.path.name}.planted-", dir=run_dir.output_dir)
        os.replace(run_dir.path, os.path.join(where, "planted"))
    run_dir.create()
    report.problems.append(
        f"{run_dir.path.name} was replaced during the run (what stood at its name: {where}); "
        "its rows are restored into a fresh directory, its artifacts are lost"
    )


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _check_stream(ledger: Ledger, aside: _Aside, problems: list[str], what: str, write_failed: bool) -> tuple[int, int]:
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
    if replaced:
        problems.append(f"{name} was replaced or deleted during the run")
    if foreign:
        problems.append(f"{name}: {foreign} lines the harness did not write (set aside)")
    if missing:
        problems.append(f"{name}: {missing} {what} the harness wrote were missing or altered")
    if foreign:
        _set_aside_foreign(ledger, aside)
    lost = _restore(ledger)
    if lost:
        problems.append(f"{name}: {lost} {what} could not be restored (the harness's own copy was altered too)")
    return foreign, missing


def _lines(path: Path):
    with path.open("rb") as fh:
        yield from lines(fh)


def _untouched(ledger: Ledger) -> bool:
    """The common case, checked without holding anything: the file is exactly the harness's
    lines, in the order it wrote them."""
    if not os.path.isfile(ledger.path):
        return False
    count = 0
    for line in _lines(ledger.path):
        if count >= len(ledger.digests) or not line.endswith(b"\n") or ledger.digest(line) != ledger.digests[count]:
            return False
        count += 1
    return count == len(ledger.digests)


def _count(ledger: Ledger) -> tuple[int, int, bool]:
    """Lines in the file nobody of ours wrote, lines of ours not in it, and whether it ends
    in half a line (every line the writer writes ends in a newline)."""
    if _untouched(ledger):
        return 0, 0, False
    expected = Counter(ledger.digests)
    foreign = 0
    torn = False
    if os.path.isfile(ledger.path):
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


def _set_aside_foreign(ledger: Ledger, aside: _Aside) -> None:
    expected = Counter(ledger.digests)
    with aside.open_append(ledger.path.name) as other:
        for line in _lines(ledger.path):
            digest = ledger.digest(line)
            if line.endswith(b"\n") and expected[digest] > 0:
                expected[digest] -= 1
            else:
                other.write(line if line.endswith(b"\n") else line + b"\n")


def _restore(ledger: Ledger) -> int:
    """Rewrite the file from the writer's private copy, keeping only lines that match their
    digests (through a fresh temporary name, so nothing planted is written through). Returns
    how many of the harness's lines could not be restored."""
    expected = Counter(ledger.digests)
    fd, tmp = tempfile.mkstemp(prefix=f".{ledger.path.name}.", dir=ledger.path.parent)
    ledger.copy.seek(0)
    with open(fd, "wb") as clean:
        for line in lines(ledger.copy):
            digest = ledger.digest(line)
            if line.endswith(b"\n") and expected[digest] > 0:
                expected[digest] -= 1
                clean.write(line)
    if os.path.isdir(ledger.path) and not os.path.islink(ledger.path):  # a directory planted in its place
        os.replace(ledger.path, tempfile.mkdtemp(prefix=f"{ledger.path.name}-", dir=ledger.path.parent) + "/planted")
    os.replace(tmp, ledger.path)
    return sum(expected.values())


def check_artifacts(run_dir: RunDir, sealed: dict[str, bytes | None], *, interrupted: bool, verify: bool = True) -> Integrity:
    """Every file in ``.agent_bench/runs`` must be the artifact of a row, unchanged, and every
    row's artifact must be there. ``sealed``: each row's run id and the SHA-256 of the bytes
    its worker placed (None for rows that recorded none). Strangers are moved out (so
    TraceCore's metrics count exactly this run's episodes): to ``orphaned-artifacts/`` when
    the run was interrupted (episodes killed in flight after their artifact was placed, not
    tampering), else set aside as tainted; an artifact whose bytes are not the ones its
    worker placed (rewritten or replaced since) is set aside as tainted, and its row keeps
    what the worker observed. ``verify=False`` skips the digests (a resume's first sweep,
    before the final check). A check that cannot complete is itself a finding."""
    report = Integrity()
    try:
        _check_artifacts(run_dir, sealed, interrupted, verify, report)
    except OSError as exc:
        report.problems.append(f".agent_bench/runs: the check could not complete ({exc})")
    report.clean = not report.problems
    return report


def _check_artifacts(
    run_dir: RunDir, sealed: dict[str, bytes | None], interrupted: bool, verify: bool, report: Integrity
) -> None:
    root = run_dir.runs_root
    agent_bench = root.parent
    if os.path.lexists(agent_bench) and not stat.S_ISDIR(os.lstat(agent_bench).st_mode):  # a link in its place
        report.problems.append(".agent_bench was replaced during the run (set aside)")
        _Aside(run_dir.path, TAINTED).move_in(str(agent_bench), "agent_bench-planted")
    if not root.is_dir() or root.is_symlink():
        report.problems.append(".agent_bench/runs was deleted or replaced during the run")
        if os.path.lexists(root):
            _Aside(run_dir.path, TAINTED).move_in(str(root), "runs-planted")
        root.mkdir(parents=True, exist_ok=True)
    present = 0  # a count, not a set: names in a folder are unique (a 5,000-episode run's set was ~0.5 MB)
    strangers: list[os.DirEntry] = []
    altered: list[os.DirEntry] = []
    with os.scandir(root) as entries:
        for entry in entries:
            run_id = entry.name.removesuffix(".json")
            if entry.name.endswith(".json") and run_id in sealed and entry.is_file(follow_symlinks=False):
                present += 1
                digest = sealed[run_id]
                too_big = entry.stat(follow_symlinks=False).st_size > MAX_ARTIFACT_BYTES  # never read a sparse terabyte
                if verify and digest is not None and (too_big or sha256_of(entry.path) != digest):
                    altered.append(entry)
            else:
                strangers.append(entry)
    if strangers:
        aside = _Aside(run_dir.path, ORPHANED) if interrupted else _Aside(run_dir.path, TAINTED)
        for entry in strangers:
            aside.move_in(entry.path, entry.name)
        if not interrupted:
            report.foreign_artifacts = len(strangers)
            report.set_aside = str(aside.folder())
            report.problems.append(f".agent_bench/runs: {len(strangers)} files no episode of this run produced (set aside)")
    if altered:
        aside = _Aside(run_dir.path, TAINTED, made=report.set_aside)
        for entry in altered:
            aside.move_in(entry.path, entry.name)
        report.altered_artifacts = len(altered)
        report.set_aside = str(aside.folder())
        report.problems.append(
            f".agent_bench/runs: {len(altered)} artifacts changed after their worker placed them (set aside; "
            "their rows keep what the worker observed)"
        )
    report.missing_artifacts = len(sealed) - present
    if report.missing_artifacts:
        report.problems.append(f".agent_bench/runs: {report.missing_artifacts} artifacts of this run's episodes are gone")
