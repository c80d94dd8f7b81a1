"""Find and read a published run, for the stages that come after it (check, compare,
report). A run is named by its stamp, its run directory, or any of its ``perf-*`` files.

The manifest and summary carry ``format_version`` (:data:`~tracecore_perf.models.FORMAT_VERSION`
when they were published). A run of a newer format than this installation reads is refused with
one :class:`UsageError` (exit 2) before anything else of it is decoded; a run without the field,
published before it existed, is read as version 0. Every manifest, published or in a run
directory, is decoded by :func:`decode_manifest`, which reads the older formats too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from tracecore_perf.defaults import OUTPUT_DIR
from tracecore_perf.errors import UsageError
from tracecore_perf.models import ARTIFACT_KINDS, FORMAT_VERSION, EpisodeRow, Manifest, Sample, Summary, artifact_path
from tracecore_perf.settings import AsRecorded, IsolationMode, KeepRuns, RunSettings

T = TypeVar("T")


class _Versioned(msgspec.Struct):
    format_version: int = 0


def format_version(path: Path) -> int:
    """The ``format_version`` of a published manifest or summary (0 when it has none).
    Raises UsageError when it is newer than this installation reads, or not JSON at all."""
    try:
        found = msgspec.json.decode(path.read_bytes(), type=_Versioned).format_version
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UsageError(f"not a tracecore-perf artifact: {path}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"published file unreadable: {path}: {exc.strerror or exc}") from None
    if found > FORMAT_VERSION:
        raise UsageError(
            f"{path.name} is of format version {found}, newer than this tracecore-perf reads "
            f"(up to {FORMAT_VERSION}): upgrade tracecore-perf to read it"
        )
    return found


# --- the manifest, of any format this installation reads ------------------------------------

NESTED_SETTINGS = 2  # the first format whose manifest nests the settings
COUNTED_PER_ROW = 3  # the first format with settings.counted_per_row: before it, every episode was counted


class _RecordedSettings(msgspec.Struct):
    """A manifest's ``settings`` (format 2 on), as recorded: types checked, bounds not."""

    settings: AsRecorded  # type: ignore[valid-type]


class _FlatExecutable(msgspec.Struct):
    executable: str


class _FlatSettings(msgspec.Struct, kw_only=True):
    """Formats 0 and 1: each setting at the manifest's top level, two of them under other names
    (``python`` as ``interpreter.executable``, ``sample_interval`` as ``sample_interval_s``).
    Those formats are done: this is the one reader of them left."""

    episodes: int
    workers: int
    timeout: float
    strict_spec: bool
    compress: bool
    isolation: IsolationMode
    keep_runs: KeepRuns
    sample_interval_s: float
    interpreter: _FlatExecutable
    # settings added while format 1 was current: a run from before one ran as these say
    warmup: int = 0
    memory_limit: int | None = None
    sandbox: bool = False
    instructions: bool = False

    def settings(self) -> RunSettings:
        return RunSettings(
            episodes=self.episodes,
            workers=self.workers,
            timeout=self.timeout,
            strict_spec=self.strict_spec,
            compress=self.compress,
            isolation=self.isolation,
            python=self.interpreter.executable,
            keep_runs=self.keep_runs,
            sample_interval=self.sample_interval_s,
            warmup=self.warmup,
            memory_limit=self.memory_limit,
            sandbox=self.sandbox,
            instructions=self.instructions,
            counted_per_row=0,
        )


def decode_manifest(data: bytes) -> Manifest:
    """A manifest's JSON as a :class:`Manifest`, of whatever format this installation reads: the
    one decode of a manifest, published or in a run directory. An older one (0, 1: every setting
    flat at the top level) is upgraded as it is read, its ``settings`` built from those fields; a
    newer one is refused. The settings are read as recorded, not held to the flags' bounds (a
    past run stays readable; :func:`recorded` holds them where a run goes on). Raises
    msgspec's DecodeError or ValidationError, as ``msgspec.json.decode`` does."""
    raw = msgspec.json.decode(data, type=dict[str, Any])
    version = msgspec.convert(raw, _Versioned).format_version
    if version > FORMAT_VERSION:
        raise msgspec.ValidationError(f"format version {version}, newer than this tracecore-perf reads (up to {FORMAT_VERSION})")
    if version >= NESTED_SETTINGS:
        settings = RunSettings(**msgspec.structs.asdict(msgspec.convert(raw, _RecordedSettings).settings))
        if version < COUNTED_PER_ROW:  # an instruction run then counted every episode
            settings = msgspec.structs.replace(settings, counted_per_row=0)
    else:
        settings = msgspec.convert(raw, _FlatSettings).settings()
    # a Struct given to convert is taken as it is: the settings stay as recorded
    return msgspec.convert({**raw, "settings": settings, "format_version": version}, Manifest)


def recorded(manifest: Manifest, source: str = "the manifest") -> RunSettings:
    """The settings a run's manifest records (its ``settings``): what ``--resume`` goes on with,
    held to the same bounds as a new run's flags (a manifest can be edited): UsageError naming
    ``source`` and ``settings.<field>`` otherwise."""
    try:
        return msgspec.convert(msgspec.to_builtins(manifest.settings), RunSettings)
    except msgspec.ValidationError as exc:
        problem, _, where = str(exc).rpartition(" - at `$.")
        name = where.rstrip("`")
        value = getattr(manifest.settings, name, None)
        raise UsageError(f"{source}: settings.{name} {value!r}: {problem or exc}") from None


_STAMP = re.compile(r"^(?:perf-[a-z]+-|run-)?(\d{8}T\d{6}Z(?:-\d+)?)(?:\.json|\.zip)?$")


def load(path: Path, kind: type[T], what: str) -> T:
    """One published file, decoded as ``kind``: every reader of a published run comes here, so a
    damaged, truncated, wrong-typed or unreadable file is one UsageError (exit 2) naming the file
    (``what``: its kind) and the problem, never a traceback."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"published {what} unreadable: {path}: {exc.strerror or exc}") from None
    try:
        return decode_manifest(data) if kind is Manifest else msgspec.json.decode(data, type=kind)  # type: ignore[return-value]
    except msgspec.ValidationError as exc:
        raise UsageError(f"published {what} {path} is not what tracecore-perf writes: {exc}") from None
    except msgspec.DecodeError as exc:
        raise UsageError(f"published {what} {path} is damaged or truncated: {exc}") from None


class PublishedRun:
    """A published run, each of its files decoded once, when first asked for (``check``,
    ``report`` and ``history`` after one run share one of these: nothing is read twice)."""

    def __init__(self, stamp: str, output_dir: Path, paths: dict[str, Path]) -> None:
        self.stamp = stamp
        self.output_dir = output_dir
        self.paths = paths
        self._decoded: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"PublishedRun(stamp={self.stamp!r}, output_dir={str(self.output_dir)!r})"

    @classmethod
    def just_published(cls, stamp: str, artifacts: dict[str, str], manifest: Manifest, summary: Summary) -> PublishedRun:
        """The run just published (``run.publish.Publication``'s fields), its manifest and
        summary taken from memory, as they were written."""
        paths = {kind: Path(path) for kind, path in artifacts.items() if kind in ARTIFACT_KINDS}
        run = cls(stamp, paths["manifest"].parent, paths)
        run._decoded.update(manifest=manifest, summary=summary)
        return run

    def _once(self, kind: str, decode: Callable[[], T]) -> T:
        if kind not in self._decoded:
            self._decoded[kind] = decode()
        return self._decoded[kind]

    def manifest(self) -> Manifest:
        def decode() -> Manifest:
            format_version(self.paths["manifest"])
            return load(self.paths["manifest"], Manifest, "manifest")

        return self._once("manifest", decode)

    def summary(self) -> Summary:
        def decode() -> Summary:
            format_version(self.paths["summary"])
            return load(self.paths["summary"], Summary, "summary")

        return self._once("summary", decode)

    def metrics(self) -> list[dict[str, Any]]:
        return self._once("metrics", lambda: load(self.paths["metrics"], list[dict[str, Any]], "metrics"))

    def series(self) -> list[EpisodeRow]:
        """Every row, in episode order (small enough to hold for analysis and charts)."""

        def decode() -> list[EpisodeRow]:
            rows = load(self.paths["series"], list[EpisodeRow], "series")
            episodes = self.summary().episodes
            if len(rows) != episodes:  # a file cut at a row's end, or another run's, decodes: it must agree
                raise UsageError(
                    f"published series {self.paths['series']} holds {len(rows)} rows, its summary says {episodes} "
                    "episodes: one of the two is damaged or not this run's"
                )
            return rows

        return self._once("series", decode)

    def samples(self) -> list[Sample]:
        return self._once("samples", lambda: load(self.paths["samples"], list[Sample], "samples"))


def locate(ref: str | Path, search_dir: Path = Path(OUTPUT_DIR)) -> PublishedRun:
    """Resolve RUN: a stamp (looked up in ``search_dir``), a run directory, a
    ``perf-<kind>-<stamp>.json`` path, or a folder holding exactly one published run (such as
    the committed ``deliverables/perf/baseline-slice/``). Raises UsageError naming what is
    missing."""
    path = Path(ref)
    if path.is_dir() and not path.name.startswith("run-"):
        manifests = sorted(path.glob("perf-manifest-*.json"))
        if len(manifests) != 1:
            found = "no published run" if not manifests else f"{len(manifests)} published runs"
            raise UsageError(f"{ref} holds {found}; name one by its stamp or a perf-*-<stamp>.json file")
        path = manifests[0]
    if path.exists():
        name = path.name
        match = _STAMP.match(name)
        if not match:
            raise UsageError(f"not a tracecore-perf run or artifact: {ref}")
        stamp = match.group(1)
        output_dir = path.parent
    else:
        match = _STAMP.match(str(ref))
        if not match or "/" in str(ref):
            raise UsageError(f"no such run, run directory or artifact: {ref}")
        stamp, output_dir = match.group(1), search_dir
    paths = {kind: artifact_path(output_dir, kind, stamp) for kind in ARTIFACT_KINDS}
    missing = [kind for kind in ("manifest", "summary", "series") if not paths[kind].is_file()]
    if missing:
        raise UsageError(f"run {stamp} has no published {missing[0]} in {output_dir} (expected {paths[missing[0]].name})")
    for kind in ("manifest", "summary"):
        format_version(paths[kind])  # a newer format: one clear error, before any field is read
    return PublishedRun(stamp=stamp, output_dir=output_dir, paths=paths)
