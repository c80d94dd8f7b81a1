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
  link would be replaced, never written through; it is set aside all the same);
- at publication (``check_agreement``), each row as it will be published must agree with what
  its artifact in the run says (success, failure type, run, agent, task, seed), and TraceCore's
  metrics with the rows (runs, successes, failure types per task ref and agent).

What is set aside goes to ``run-<stamp>/tainted/`` (or a fresh ``tainted-*`` folder when that
name is taken by something the harness did not make); the ``Integrity`` block names it.
Whatever the check finds, and a check that cannot complete, makes the run ``tainted``
(exit 4): never published as fact.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import msgspec

from tracecore_perf.files import foreign_at, sha256_of
from tracecore_perf.models import EpisodeRow, Integrity
from tracecore_perf.run.episode.constants import ARTIFACT_CAP_BYTES, RUN_ID
from tracecore_perf.run.rundir import MANIFEST, RunDir, identity, lines
from tracecore_perf.run.writer import Ledger, Ledgers

TAINTED = "tainted"
# No worker places a larger artifact (it refuses one).
MAX_ARTIFACT_BYTES = ARTIFACT_CAP_BYTES
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
    integrity = Integrity(
        problems=list(artifact_check.problems),
        foreign_artifacts=artifact_check.foreign_artifacts,
        missing_artifacts=artifact_check.missing_artifacts,
        altered_artifacts=artifact_check.altered_artifacts,
        set_aside=artifact_check.set_aside,
    )
    _check_run_dir(run_dir, integrity)
    aside = _Aside(run_dir.path, TAINTED, made=artifact_check.set_aside)
    if os.path.lexists(run_dir.logs) and not stat.S_ISDIR(os.lstat(run_dir.logs).st_mode):  # a link in its place
        aside.move_in(str(run_dir.logs), "logs-planted")
        run_dir.logs.mkdir()
        integrity.problems.append("logs was replaced during the run (set aside)")
    for path in [*published, run_dir.path / MANIFEST]:
        try:
            found = foreign_at(path)
            if found is not None:
                aside.move_in(str(path), path.name)
                integrity.problems.append(f"{path.name}: {found} stood where the run publishes (set aside)")
        except OSError as exc:
            integrity.problems.append(f"{path.name}: the check could not complete ({exc})")
    for ledger, what in ((ledgers.series, "rows"), (ledgers.samples, "samples")):
        try:
            foreign, missing = _check_stream(ledger, aside, integrity.problems, what, write_failed)
        except OSError as exc:
            integrity.problems.append(
                f"{ledger.path.name}: the check could not complete ({exc}); restored from the harness's copy"
            )
            foreign = missing = 0
            try:
                _restore(ledger)
            except OSError as again:
                integrity.problems.append(f"{ledger.path.name}: not restored either ({again}); its rows are not to be trusted")
        if what == "rows":
            integrity.foreign_series_lines, integrity.missing_series_rows = foreign, missing
        else:
            integrity.foreign_sample_lines, integrity.missing_samples = foreign, missing
    if aside.path is not None:
        integrity.set_aside = str(aside.path)
    integrity.clean = not integrity.problems
    return integrity


def _check_run_dir(run_dir: RunDir, integrity: Integrity) -> None:
    """The run directory must still be the one the run made: an episode may have moved it away
    and put a link to a folder of yours in its place, which the harness would then write
    through. If so, what stands at its name is set aside beside it, a fresh run directory is
    made there, and the rows are restored into it from the harness's own copies."""
    if run_dir.identity is None or identity(run_dir.path) == run_dir.identity and not run_dir.path.is_symlink():
        return
    where = "nothing"
    if os.path.lexists(run_dir.path):
        where = tempfile.mkdtemp(prefix=f"{run_dir.path.name}.planted-", dir=run_dir.output_dir)
        os.replace(run_dir.path, os.path.join(where, "planted"))
    run_dir.create()
    integrity.problems.append(
        f"{run_dir.path.name} was replaced during the run (what stood at its name: {where}); "
        "its rows are restored into a fresh directory, its artifacts are lost"
    )


def _check_stream(ledger: Ledger, aside: _Aside, problems: list[str], what: str, write_failed: bool) -> tuple[int, int]:
    name = ledger.path.name
    try:
        ledger.copy.flush()
    except OSError as exc:  # a full disk: the copy may lack its last lines (the file has them)
        ledger.copy_error = ledger.copy_error or exc
    foreign, missing, torn = _count(ledger)
    replaced = identity(ledger.path) != ledger.identity
    if torn and write_failed and not (foreign or missing or replaced):
        # Our own half-written line (the disk filled mid-line): dropped, nobody to blame. If
        # even that cannot be written, the file stays as it is: --resume cuts the torn line.
        with contextlib.suppress(OSError):
            _restore(ledger)
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
    try:
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
    except BaseException:
        with contextlib.suppress(OSError):  # a full disk: no empty temporary file left behind
            os.unlink(tmp)
        raise
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
    integrity = Integrity()
    try:
        _check_artifacts(run_dir, sealed, interrupted, verify, integrity)
    except OSError as exc:
        integrity.problems.append(f".agent_bench/runs: the check could not complete ({exc})")
    integrity.clean = not integrity.problems
    return integrity


def _check_artifacts(
    run_dir: RunDir, sealed: dict[str, bytes | None], interrupted: bool, verify: bool, integrity: Integrity
) -> None:
    root = run_dir.runs_root
    agent_bench = root.parent
    if os.path.lexists(agent_bench) and not stat.S_ISDIR(os.lstat(agent_bench).st_mode):  # a link in its place
        integrity.problems.append(".agent_bench was replaced during the run (set aside)")
        _Aside(run_dir.path, TAINTED).move_in(str(agent_bench), "agent_bench-planted")
    if not root.is_dir() or root.is_symlink():
        integrity.problems.append(".agent_bench/runs was deleted or replaced during the run")
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
            integrity.foreign_artifacts = len(strangers)
            integrity.set_aside = str(aside.folder())
            integrity.problems.append(f".agent_bench/runs: {len(strangers)} files no episode of this run produced (set aside)")
    if altered:
        aside = _Aside(run_dir.path, TAINTED, made=integrity.set_aside)
        for entry in altered:
            aside.move_in(entry.path, entry.name)
        integrity.altered_artifacts = len(altered)
        integrity.set_aside = str(aside.folder())
        integrity.problems.append(
            f".agent_bench/runs: {len(altered)} artifacts changed after their worker placed them (set aside; "
            "their rows keep what the worker observed)"
        )
    integrity.missing_artifacts = len(sealed) - present
    if integrity.missing_artifacts:
        integrity.problems.append(f".agent_bench/runs: {integrity.missing_artifacts} artifacts of this run's episodes are gone")


# --- the rows held to their artifacts, and TraceCore's metrics to the rows ----------------------
#
# A row's success comes from what its worker reported of the artifact it placed, and the check
# above holds each artifact's bytes to the SHA-256 in its row. Neither looks at what the bytes
# say: a worker that lied (or a series line an earlier attempt left, which a resume takes as
# found) could publish a success its own artifact denies, beside TraceCore's metrics counting
# the failure. So, at publication, each row is read against its artifact in the run, and the
# metrics against the rows, and any disagreement taints the run.

SHOWN = 10  # disagreements named one by one; the rest are counted in one more line
RATE_TOLERANCE = 0.5e-4  # TraceCore rounds a success rate to 4 places


class _Claims(msgspec.Struct):
    """What an artifact says that its row repeats (a field it does not hold reads as None)."""

    run_id: object = None
    success: object = None
    failure_type: object = None
    agent: object = None
    task_ref: object = None
    seed: object = None


_CLAIMS = msgspec.json.Decoder(_Claims)


def _read_artifact(folder: int | None, name: str) -> bytearray:
    """The bytes of the regular file ``name`` in ``folder`` (a descriptor: nothing to resolve
    per file), never through a link, never blocking on a FIFO, never past what a worker places.
    Read for as many bytes as it holds (``files.read_regular`` asks for its 64 MiB limit at once,
    which cost four times as much per 10 KiB artifact). OSError (FileNotFoundError: not there)."""
    if folder is None:
        raise FileNotFoundError(errno.ENOENT, "no .agent_bench/runs", name)
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", name)
        data = bytearray()
        while len(data) <= MAX_ARTIFACT_BYTES and (part := os.read(fd, max(info.st_size + 1 - len(data), 1 << 16))):
            data += part
        if len(data) > MAX_ARTIFACT_BYTES:
            raise OSError(errno.EFBIG, f"larger than {MAX_ARTIFACT_BYTES >> 20} MiB", name)
        return data
    finally:
        os.close(fd)


def _read_claims(folder: int | None, name: str) -> _Claims:
    """The artifact ``name`` in ``folder`` as TraceCore's reader (Python's ``json``) sees it;
    OSError (FileNotFoundError: not there) or ValueError saying why it cannot be read."""
    data = _read_artifact(folder, name)
    try:
        return _CLAIMS.decode(data)
    except msgspec.ValidationError:
        raise ValueError("not a JSON object") from None
    except (msgspec.DecodeError, RecursionError):
        pass  # NaN or Infinity, which Python's json reads (and TraceCore with it): read as it does
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        raise ValueError("not JSON TraceCore can read") from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return _Claims(**{name: value.get(name) for name in _Claims.__struct_fields__})


def _same_task(given: str, recorded: object) -> bool:
    """The scenario's task ref and the one TraceCore recorded (``id@version``: the version it
    ran when the ref named none)."""
    if not isinstance(recorded, str):
        return False
    if given == recorded:
        return True
    given_id, _, given_version = given.partition("@")
    recorded_id, _, recorded_version = recorded.partition("@")
    if given_id != recorded_id:
        return False
    return not given_version or (
        given_version.isdigit() and recorded_version.isdigit() and int(given_version) == int(recorded_version)
    )


def _key(value: object) -> str:
    """A grouping value as TraceCore's metrics group by it (a missing one is "")."""
    return "" if value is None else value if isinstance(value, str) else repr(value)


class _Group:
    """One (task ref, agent) as TraceCore's metrics group the run's artifacts: the rows whose
    artifact is in the run, how many of them succeeded, how many of their artifacts say
    success, and the artifacts' failure types as the metrics count them."""

    __slots__ = ("runs", "rows_ok", "artifacts_ok", "taxonomy")

    def __init__(self) -> None:
        self.runs = self.rows_ok = self.artifacts_ok = 0
        self.taxonomy: Counter[str] = Counter()


def _disagreements(row: EpisodeRow, claims: _Claims, label: str) -> list[str]:
    """How ``row`` and its artifact's ``claims`` disagree (none: an empty list)."""
    found = []
    if claims.run_id != row.run_id:
        found.append(f"the artifact is run {_short(claims.run_id)}'s")
    if row.success and claims.success is not True:
        found.append(f"the row says success, its artifact says success: {_short(claims.success)}")
    failure_type = None if claims.failure_type is None else str(claims.failure_type)[:500]
    expected = failure_type or ("timeout" if row.timed_out else None)  # as the orchestrator records it
    if row.failure_type != expected:
        found.append(f"the row's failure_type is {_short(row.failure_type)}, its artifact's {_short(failure_type)}")
    if claims.agent is not None and claims.agent != label:
        found.append(f"the row's agent is {_short(label)}, its artifact's {_short(claims.agent)}")
    if claims.task_ref is not None and not _same_task(row.task_ref, claims.task_ref):
        found.append(f"the row's task is {_short(row.task_ref)}, its artifact's {_short(claims.task_ref)}")
    if claims.seed is not None and (type(claims.seed) is not int or claims.seed != row.seed):
        found.append(f"the row's seed is {row.seed}, its artifact's {_short(claims.seed)}")
    return found


def _short(value: object, cap: int = 120) -> str:
    """``value`` for a problem line: a string as it is, a JSON scalar as JSON writes it, capped."""
    if isinstance(value, str):
        text = value
    elif value is None or isinstance(value, (bool, int, float)):
        text = json.dumps(value)
    else:
        text = repr(value)
    return text if len(text) <= cap else text[: cap - 1] + "…"


def _hold_rows(run_dir: RunDir, labels: dict[str, str]) -> tuple[list[str], int, dict[tuple[str, str], _Group]]:
    """Every row of the series (the first readable one of each episode, as publishing takes
    them) against its artifact in the run. Returns one line per row that disagrees with it,
    their count, and the rows grouped as TraceCore's metrics group their artifacts."""
    try:
        folder: int | None = os.open(run_dir.runs_root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        folder = None  # every artifact is gone (check_artifacts says so too)
    try:
        return _hold_rows_in(run_dir, folder, labels)
    finally:
        if folder is not None:
            os.close(folder)


def _hold_rows_in(
    run_dir: RunDir, folder: int | None, labels: dict[str, str]
) -> tuple[list[str], int, dict[tuple[str, str], _Group]]:
    lines_: list[str] = []
    contradicted = 0
    groups: dict[tuple[str, str], _Group] = {}
    episodes: set[int] = set()
    run_ids: dict[str, int] = {}  # run id -> the episode whose row named it first
    for row in run_dir.iter_rows():
        if row.episode_index in episodes:
            continue
        episodes.add(row.episode_index)
        label = labels.get(row.agent, row.agent)
        found: list[str] = []
        claims = None
        if row.run_id is None:
            if row.success:
                found.append("the row says success but names no artifact")
        elif not RUN_ID.fullmatch(row.run_id):
            found.append(f"the row names no valid run id ({_short(row.run_id)})")
        else:
            if row.artifact_digest is None:
                found.append("the row carries no SHA-256 of its artifact, so its bytes were never held to it")
            if row.run_id in run_ids:
                found.append(f"the row names the artifact of episode {run_ids[row.run_id]}'s row too")
            else:
                run_ids[row.run_id] = row.episode
            try:
                claims = _read_claims(folder, f"{row.run_id}.json")
            except FileNotFoundError:
                if row.success:  # a failed row's missing artifact is counted by check_artifacts
                    found.append("the row says success, its artifact is not in the run")
            except (OSError, ValueError) as exc:
                found.append(f"its artifact cannot be read ({exc.strerror if isinstance(exc, OSError) else exc})")
        if claims is not None:
            found += _disagreements(row, claims, label)
            group = groups.setdefault((_key(claims.task_ref), _key(claims.agent)), _Group())
            group.runs += 1
            group.rows_ok += row.success
            group.artifacts_ok += bool(claims.success)  # as TraceCore's metrics count it
            group.taxonomy[str(claims.failure_type or ("success" if claims.success else "unknown"))] += 1
        if found:
            contradicted += 1
            if len(lines_) < SHOWN:
                where = f" ({row.run_id}.json)" if row.run_id and RUN_ID.fullmatch(row.run_id) else ""
                lines_.append(f"row of episode {row.episode}{where}: {'; '.join(found)}")
    if contradicted > SHOWN:
        lines_.append(f"{contradicted - SHOWN} more rows disagree with their artifacts")
    return lines_, contradicted, groups


def _hold_metrics(metrics_rows: list[dict], groups: dict[tuple[str, str], _Group]) -> list[str]:
    """TraceCore's metrics (``compute_all_metrics``: one row per task ref and agent, with its
    run count, success rate and failure types) against the rows: one line per group where
    they disagree. A figure a TraceCore's metrics row does not hold is not compared."""
    found: list[str] = []
    metrics: dict[tuple[str, str], dict] = {}
    for entry in metrics_rows:
        if isinstance(entry, dict):
            key = (_key(entry.get("task_ref")), _key(entry.get("agent")))
            if key in metrics:
                found.append(f"TraceCore's metrics hold {key[1]} on {key[0]} twice")
            metrics[key] = entry
    for key in sorted(set(metrics) | set(groups)):
        task_ref, agent = key
        group, entry = groups.get(key) or _Group(), metrics.get(key, {"run_count": 0, "reproducibility_rate": 0.0})
        runs, rate, taxonomy = entry.get("run_count"), entry.get("reproducibility_rate"), entry.get("failure_taxonomy")
        runs = runs if type(runs) is int else None
        rate = rate if type(rate) in (int, float) else None
        disagree = runs is not None and runs != group.runs
        if rate is not None and runs:
            limit = RATE_TOLERANCE + 1e-12
            disagree |= abs(rate - group.artifacts_ok / runs) > limit or rate < group.rows_ok / runs - limit
        taxonomy_differs = isinstance(taxonomy, dict) and taxonomy != dict(group.taxonomy)
        if disagree or taxonomy_differs:
            successes = "?" if rate is None or runs is None else str(round(rate * runs))
            line = (
                f"TraceCore's metrics disagree with the rows for {agent or '(no agent)'} on {task_ref or '(no task)'}: "
                f"the metrics count {successes} successful runs of {'?' if runs is None else runs}, the rows "
                f"{group.rows_ok} of {group.runs}"
            )
            if group.artifacts_ok != group.rows_ok:
                line += f" (their artifacts say {group.artifacts_ok})"
            if taxonomy_differs:
                line += f"; failure types: the metrics {_short(taxonomy)}, the artifacts {_short(dict(group.taxonomy))}"
            found.append(line)
    return found


def _hold_profiles(run_dir: RunDir) -> list[str]:
    """Instruction mode: each profile a row names (``explain``'s evidence, in ``profiles/``)
    against the SHA-256 its row recorded. One changed or gone since its worker kept it was
    changed by someone else (an episode of the run): a line each, up to SHOWN."""
    found = []
    seen: set[int] = set()
    for row in run_dir.iter_rows():
        if row.episode_index in seen:
            continue
        seen.add(row.episode_index)
        for name, digest in ((row.profile, row.profile_sha256), (row.python_profile, row.python_profile_sha256)):
            if not name:
                continue
            now = sha256_of(run_dir.profiles / name) if "/" not in name else None
            why = None
            if now is None:
                why = "is gone, or no longer a regular file"
            elif now.hex() != digest:
                why = "changed after its worker kept it"
            if why:
                found.append(f"episode {row.episode_index + 1}'s profile {name} {why}")
    return found[:SHOWN] + ([f"{len(found) - SHOWN} more profiles changed"] if len(found) > SHOWN else [])


def check_agreement(run_dir: RunDir, integrity: Integrity, *, labels: dict[str, str], metrics_rows: list[dict]) -> None:
    """At publication, into ``integrity``: each row of the series against its artifact in the run
    (its ``run_id``, success, failure type, and the agent, task and seed where the artifact
    records them; a successful row's artifact must be there and readable, and every row with
    an artifact must carry its SHA-256), then TraceCore's metrics (``metrics_rows``, empty when
    there are none: a TraceCore without the pipeline, a run stopped early) against the rows, per
    task ref and agent: runs, successes, failure types. Rows that failed before producing an
    artifact are in neither. ``labels``: each scenario agent -> the name its artifacts record.
    A row may fail where its artifact says success (its process ended badly, ``--strict-spec``),
    never the other way round."""
    try:
        lines_, integrity.contradicted_rows, groups = _hold_rows(run_dir, labels)
        integrity.problems += lines_
    except OSError as exc:
        integrity.problems.append(f"the rows could not be held to their artifacts ({exc.strerror or exc})")
        integrity.clean = False
        return
    integrity.problems += _hold_profiles(run_dir)
    if metrics_rows:
        disagreements = _hold_metrics(metrics_rows, groups)
        integrity.metrics_disagreements = len(disagreements)
        integrity.problems += disagreements[:SHOWN]
        if len(disagreements) > SHOWN:
            integrity.problems.append(f"TraceCore's metrics disagree with the rows for {len(disagreements) - SHOWN} more groups")
    integrity.clean = not integrity.problems
