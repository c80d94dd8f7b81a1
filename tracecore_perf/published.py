"""Find and read a published run, for the stages that come after it (check, compare,
report). A run is named by its stamp, its run directory, or any of its ``perf-*`` files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec

from tracecore_perf.errors import UsageError
from tracecore_perf.models import EpisodeRow, Manifest, Sample, Summary
from tracecore_perf.run.publish import ARTIFACT_KINDS, artifact_path

_STAMP = re.compile(r"^(?:perf-[a-z]+-|run-)?(\d{8}T\d{6}Z(?:-\d+)?)(?:\.json|\.zip)?$")


class PublishedRun(msgspec.Struct):
    stamp: str
    output_dir: Path
    paths: dict[str, Path]

    def manifest(self) -> Manifest:
        return msgspec.json.decode(self.paths["manifest"].read_bytes(), type=Manifest)

    def summary(self) -> Summary:
        return msgspec.json.decode(self.paths["summary"].read_bytes(), type=Summary)

    def metrics(self) -> list[dict[str, Any]]:
        return msgspec.json.decode(self.paths["metrics"].read_bytes())

    def series(self) -> list[EpisodeRow]:
        """Every row, in episode order (small enough to hold for analysis and charts)."""
        return msgspec.json.decode(self.paths["series"].read_bytes(), type=list[EpisodeRow])

    def samples(self) -> list[Sample]:
        return msgspec.json.decode(self.paths["samples"].read_bytes(), type=list[Sample])


def locate(ref: str | Path, search_dir: Path = Path("deliverables/perf")) -> PublishedRun:
    """Resolve RUN: a stamp (looked up in ``search_dir``), a run directory, or a
    ``perf-<kind>-<stamp>.json`` path. Raises UsageError naming what is missing."""
    path = Path(ref)
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
    return PublishedRun(stamp=stamp, output_dir=output_dir, paths=paths)
