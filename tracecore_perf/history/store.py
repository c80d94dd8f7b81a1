"""The history store: one SQLite file (stdlib ``sqlite3``), one row per published run, one
per (agent, task_ref) of each run, and one per accepted run (``history accept``).

The file says whose it is and which schema it holds: ``PRAGMA application_id`` is
:data:`APPLICATION_ID` and ``PRAGMA user_version`` the schema version. A database of another
application (another id, or tables without ours) is refused, never rebuilt; a database of a
newer schema is refused; an older one is migrated step by step (:data:`MIGRATIONS`), each step
and its version bump in one transaction. Reading commands open the file read-only, so nothing
they refuse or read changes a byte of it.
"""

from __future__ import annotations

import shlex
import sqlite3
import statistics
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import msgspec

from tracecore_perf.errors import UsageError
from tracecore_perf.history.models import Acceptance, GroupFigures, RunRecord
from tracecore_perf.published import PublishedRun
from tracecore_perf.stats import distribution

APPLICATION_ID = 0x54435046  # "TCPF"
SCHEMA_VERSION = 5

# MIGRATIONS[v] takes a database from schema version v to v + 1 (statements run in order, in
# one transaction with the version bump). Version 0 is an empty file: the first step creates it.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE runs (
            stamp TEXT PRIMARY KEY,
            generated_at TEXT NOT NULL,
            added_at TEXT NOT NULL,
            label TEXT,
            status TEXT NOT NULL,
            episodes INTEGER NOT NULL,
            workers INTEGER NOT NULL,
            isolation TEXT NOT NULL,
            warmup INTEGER,
            tracecore_version TEXT NOT NULL,
            python_version TEXT NOT NULL,
            machine_class TEXT NOT NULL,
            host_class TEXT NOT NULL,
            cpu_model TEXT NOT NULL,
            throughput_eps REAL,
            harness_rss_bytes INTEGER,
            workers_rss_bytes INTEGER,
            source_dir TEXT NOT NULL
        )""",
        """CREATE TABLE row_figures (
            stamp TEXT NOT NULL REFERENCES runs(stamp) ON DELETE CASCADE,
            agent TEXT NOT NULL,
            task_ref TEXT NOT NULL,
            episodes INTEGER NOT NULL,
            cpu_s REAL,
            wall_clock_s REAL,
            wall_clock_p95_s REAL,
            success_rate REAL NOT NULL,
            artifact_bytes REAL,
            episode_rss_bytes INTEGER,
            PRIMARY KEY (stamp, agent, task_ref)
        )""",
        "CREATE INDEX runs_by_time ON runs(generated_at)",
    ],
    [  # instruction counts (run --instructions)
        "ALTER TABLE runs ADD COLUMN instructions INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE row_figures ADD COLUMN instructions REAL",
    ],
    [  # one machine id: the hardware's (it was host_class; machine_class mixed the interpreter in)
        "ALTER TABLE runs DROP COLUMN machine_class",
        "ALTER TABLE runs RENAME COLUMN host_class TO machine_id",
    ],
    [  # history accept: the change points at or before a run are intended, not regressions
        """CREATE TABLE accepted (
            stamp TEXT PRIMARY KEY REFERENCES runs(stamp) ON DELETE CASCADE,
            reason TEXT,
            accepted_at TEXT NOT NULL
        )""",
    ],
    [  # a run's figures per (agent, task_ref) are a group's, not a row's (an episode's record)
        "ALTER TABLE row_figures RENAME TO group_figures",
    ],
]
assert len(MIGRATIONS) == SCHEMA_VERSION

_RUN_COLUMNS = [f for f in RunRecord.__struct_fields__]
_GROUP_COLUMNS = [f for f in GroupFigures.__struct_fields__]


# --- what a run contributes ------------------------------------------------------------


def figures_of(run: PublishedRun, label: str | None = None) -> tuple[RunRecord, list[GroupFigures]]:
    """What the store keeps of one published run. Raises UsageError for a run history cannot
    take (unreadable, or tainted: its rows are not all the harness's own)."""
    try:
        manifest, summary, series = run.manifest(), run.summary(), run.series()
        samples = run.samples() if run.paths["samples"].is_file() else []
    except (msgspec.DecodeError, msgspec.ValidationError, OSError) as exc:
        raise UsageError(f"run {run.stamp} cannot be read: {exc}") from None
    if summary.status == "tainted" or not summary.integrity.clean:
        raise UsageError(f"run {run.stamp} is tainted (its evidence was tampered with): not added to the history")
    if summary.status not in ("complete", "resumed"):
        # Its figures cover only the episodes it got to; the finished run would never replace them.
        raise UsageError(
            f"run {run.stamp} is {summary.status}: finish it first "
            f"(python -m tracecore_perf --resume {run.output_dir / f'run-{run.stamp}'}), then add it"
        )
    settings = manifest.settings
    native = not settings.instructions  # under Valgrind, time and an episode's memory are its, not ours
    record = RunRecord(
        stamp=run.stamp,
        generated_at=manifest.generated_at,
        label=label,
        status=summary.status,
        episodes=summary.episodes,
        workers=settings.workers,
        isolation=settings.isolation,
        warmup=settings.warmup if settings.isolation == "forkserver" else None,
        tracecore_version=manifest.interpreter.tracecore_version,
        python_version=manifest.interpreter.python_version,
        machine_id=manifest.machine_id(),
        cpu_model=manifest.host.cpu_model,
        throughput_eps=summary.throughput_eps if native else None,
        harness_rss_bytes=summary.resources.harness_peak_rss_bytes,
        workers_rss_bytes=max((s.workers_rss_bytes for s in samples), default=None) if native else None,
        source_dir=str(run.output_dir.resolve()),
        added_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        instructions=settings.instructions,
    )
    grouped = defaultdict(list)
    for row in series:
        grouped[(row.agent, row.task_ref)].append(row)
    groups = []
    for (agent, task_ref), members in grouped.items():
        ok = [r for r in members if r.success]
        wall = distribution(r.wall_clock_s for r in ok)
        counts = [r.instructions for r in ok if r.instructions is not None]
        groups.append(
            GroupFigures(
                stamp=run.stamp,
                agent=agent,
                task_ref=task_ref,
                episodes=len(members),
                cpu_s=round(statistics.median(r.cpu_s for r in ok), 6) if ok and native else None,
                wall_clock_s=wall.p50 if native else None,
                wall_clock_p95_s=wall.p95 if native else None,
                success_rate=round(len(ok) / len(members), 6),
                artifact_bytes=round(statistics.fmean(r.artifact_bytes for r in ok), 1) if ok else None,
                episode_rss_bytes=(max(r.max_rss_bytes for r in members) or None) if native else None,
                instructions=statistics.median(counts) if counts else None,
            )
        )
    return record, groups


# --- the file --------------------------------------------------------------------------


def damaged(path: Path, detail: object) -> UsageError:
    """A history database SQLite finds damaged: one line naming it and how to recover."""
    lines = [line.strip() for line in str(detail).splitlines() if line.strip() and not line.startswith("***")]
    return UsageError(
        f"{path}: the history database is damaged ({lines[0] if lines else detail}); nothing was written to it: move it "
        f"aside (mv {shlex.quote(str(path))} {shlex.quote(str(path) + '.damaged')}) and add the published runs again "
        f"into a new one (`history add RUN... --db {shlex.quote(str(path))}`), or put back a copy"
    )


def check_intact(conn: sqlite3.Connection, path: Path) -> None:
    """``PRAGMA quick_check`` of the whole file: a damaged page is refused before anything is
    read from or written to it (SQLite would write around it and fail later, on a read)."""
    try:
        found = [row[0] for row in conn.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as exc:
        raise damaged(path, exc) from None
    if found != ["ok"]:
        raise damaged(path, found[0] if found else "no answer from quick_check")


def _reading(method):
    """A read of an open store: a damaged page SQLite meets only now is one UsageError too."""

    def read(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise damaged(self.path, exc) from None

    read.__doc__, read.__name__ = method.__doc__, method.__name__
    return read


class Store:
    """An open history database (use :func:`open_store`)."""

    def __init__(self, path: Path, conn: sqlite3.Connection, writable: bool, version: int = SCHEMA_VERSION) -> None:
        self.path = path
        self.conn = conn
        self.writable = writable
        self.version = version  # older than SCHEMA_VERSION only when opened read-only with older_ok

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, entries: Iterable[tuple[RunRecord, list[GroupFigures]]]) -> list[bool]:
        """Add runs in one transaction; a run already present (same stamp, same start) is left
        as it is; another run with a stamp already present is refused (UsageError, nothing
        added). Returns, per run, whether it was added."""
        if not self.writable:
            raise RuntimeError("store opened read-only")
        added = []
        run_sql = f"INSERT OR IGNORE INTO runs ({', '.join(_RUN_COLUMNS)}) VALUES ({', '.join('?' * len(_RUN_COLUMNS))})"
        group_sql = f"INSERT INTO group_figures ({', '.join(_GROUP_COLUMNS)}) VALUES ({', '.join('?' * len(_GROUP_COLUMNS))})"
        with _transaction(self.conn):
            for record, groups in entries:
                known = self.conn.execute("SELECT generated_at, source_dir FROM runs WHERE stamp = ?", (record.stamp,)).fetchone()
                if known is not None and known[0] != record.generated_at:
                    # Runs are known by their stamp; two runs in different folders can share one.
                    raise UsageError(
                        f"another run with stamp {record.stamp} is already in the history (from {known[1]}, started "
                        f"{known[0]}); the run from {record.source_dir} (started {record.generated_at}) is not added"
                    )
                cursor = self.conn.execute(run_sql, [getattr(record, c) for c in _RUN_COLUMNS])
                added.append(cursor.rowcount == 1)
                if cursor.rowcount == 1:
                    self.conn.executemany(group_sql, [[getattr(g, c) for c in _GROUP_COLUMNS] for g in groups])
        return added

    def accept(self, stamp: str, reason: str | None) -> bool:
        """Accept the change points at or before run ``stamp`` (one already in the store).
        Returns False when it was accepted before (its reason and time are replaced)."""
        if not self.writable:
            raise RuntimeError("store opened read-only")
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with _transaction(self.conn):
            known = self.conn.execute("SELECT 1 FROM accepted WHERE stamp = ?", (stamp,)).fetchone() is not None
            sql = "INSERT OR REPLACE INTO accepted (stamp, reason, accepted_at) VALUES (?, ?, ?)"
            self.conn.execute(sql, (stamp, reason, now))
        return not known

    @_reading
    def acceptances(self) -> list[Acceptance]:
        cursor = self.conn.execute(
            "SELECT a.stamp, r.label, a.reason, a.accepted_at FROM accepted a JOIN runs r USING (stamp) ORDER BY a.stamp"
        )
        return [Acceptance(stamp=s, label=label, reason=reason, accepted_at=at) for s, label, reason, at in cursor]

    @_reading
    def refs(self) -> list[tuple[str, str | None]]:
        """(stamp, label) of every run: what names a run, in any schema version."""
        if self.version == 0:
            return []
        return list(self.conn.execute("SELECT stamp, label FROM runs ORDER BY generated_at, stamp"))

    @_reading
    def resolve(self, ref: str) -> str:
        """The stamp of the one run whose stamp or label is ``ref``; UsageError when none is,
        or when more than one run answers to it."""
        stamps = list(dict.fromkeys(stamp for stamp, label in self.refs() if ref in (stamp, label)))
        if not stamps:
            raise UsageError(f"no run {ref!r} in the history {self.path} (a run's stamp or label; `history show` lists them)")
        if len(stamps) > 1:
            shown = ", ".join(stamps[:5]) + (", ..." if len(stamps) > 5 else "")
            raise UsageError(f"{ref!r} names {len(stamps)} runs in the history {self.path} ({shown}): give one's stamp")
        return stamps[0]

    @_reading
    def runs(self) -> list[RunRecord]:
        cursor = self.conn.execute(f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs ORDER BY generated_at, stamp")
        return [RunRecord(**dict(zip(_RUN_COLUMNS, values, strict=True))) for values in cursor]

    @_reading
    def groups(self) -> list[GroupFigures]:
        """Every run's figures per (agent, task_ref), in stamp order."""
        cursor = self.conn.execute(f"SELECT {', '.join(_GROUP_COLUMNS)} FROM group_figures ORDER BY stamp, agent, task_ref")
        return [GroupFigures(**dict(zip(_GROUP_COLUMNS, values, strict=True))) for values in cursor]


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, ROLLBACK on any error (the connection is in autocommit mode,
    so DDL of a migration is inside the transaction too)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, *rest: object) -> None:
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _refuse(path: Path, why: str) -> UsageError:
    return UsageError(f"{path}: {why}; history databases are never rebuilt or overwritten (use another database file)")


def _identify(conn: sqlite3.Connection, path: Path) -> int:
    """The schema version of our database at ``path`` (0: an empty file). Raises UsageError
    for a file that is not a database, another application's, or of a newer schema."""
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    except sqlite3.DatabaseError as exc:
        if "malformed" in str(exc):
            raise damaged(path, exc) from None
        raise _refuse(path, f"not a readable SQLite database ({exc})") from None
    if app_id != APPLICATION_ID:
        if app_id == 0 and not tables and version == 0:
            return 0
        owner = f"application id {app_id:#x}" if app_id else f"tables {', '.join(sorted(tables)[:4]) or 'none'}"
        raise _refuse(path, f"not a tracecore-perf history database ({owner})")
    if version > SCHEMA_VERSION:
        raise UsageError(
            f"{path}: history schema version {version} is newer than this tracecore-perf reads (up to {SCHEMA_VERSION}): "
            "upgrade tracecore-perf to read it"
        )
    return version


def migrate(conn: sqlite3.Connection, version: int) -> None:
    """Bring our database from ``version`` to :data:`SCHEMA_VERSION`, one step per transaction."""
    for step in range(version, SCHEMA_VERSION):
        with _transaction(conn):
            for statement in MIGRATIONS[step]:
                conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {step + 1}")


def preflight(path: Path) -> None:
    """Before a run that will add itself (``run --history``): the database at ``path`` can be
    opened and is ours, or it does not exist yet and its folder exists or is made here.
    Changes no file."""
    if path.exists() and not path.is_dir() and path.stat().st_size == 0:
        return
    if path.exists():
        open_store(path, write=False, older_ok=True).close()
    else:  # its folder is made now, as the run makes its output folder (the file once published)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--history: cannot create the folder of {path}: {exc.strerror or exc}") from None


def open_store(path: Path, *, write: bool, older_ok: bool = False, create_dir: bool = False) -> Store:
    """Open the history database at ``path``. ``write``: create it if absent and migrate an
    older schema (``history add``); otherwise read-only, and it must exist with our schema.
    Raises UsageError (one line) without changing the file."""
    if path.is_dir():
        raise UsageError(f"--db is a directory, not a history database: {path}")
    if not path.exists():
        if not write:
            raise UsageError(f"no history database at {path} (add runs with `history add RUN... --db {path}`)")
        if not path.parent.is_dir() and create_dir:
            path.parent.mkdir(parents=True, exist_ok=True)  # as a run creates its output directory
        if not path.parent.is_dir():
            raise UsageError(f"--db: directory does not exist: {path.parent}")
    try:
        if write:
            conn = sqlite3.connect(path, isolation_level=None)
        else:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise UsageError(f"{path}: cannot open the history database ({exc})") from None
    try:
        version = _identify(conn, path)
        check_intact(conn, path)  # before any migration or write: a damaged file is never written to
        if version < SCHEMA_VERSION:
            if not write and not older_ok:
                if version == 0:
                    raise UsageError(f"{path} is an empty file, not a history database yet (add runs with `history add`)")
                raise UsageError(f"{path}: history schema version {version} is older; `history add` migrates it")
            if write:
                migrate(conn, version)
        conn.execute("PRAGMA foreign_keys = ON")
    except UsageError:
        conn.close()
        raise
    except sqlite3.Error as exc:
        conn.close()
        raise UsageError(f"{path}: cannot use the history database ({exc})") from None
    return Store(path, conn, write, SCHEMA_VERSION if write else version)
