"""Find and read a published run, for the stages that come after it (check, compare,
report). A run is named by its stamp, its run directory, or any of its ``perf-*`` files.

The manifest and summary carry ``format_version`` (:data:`~tracecore_perf.models.FORMAT_VERSION`
when they were published). A run of a newer format than this installation reads is refused with
one :class:`UsageError` (exit 2) before anything else of it is decoded; a run without the field,
published before it existed, is read as version 0.
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
        return msgspec.json.decode(data, type=kind)
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
