"""The one set of run settings: what a run of episodes is told, whoever starts it.

``run``'s flags, ``ab``'s flags (the same for both sides), a matrix file's keys (its top
level and each cell) and the manifest's record of a run (``Manifest.settings``, a RunSettings)
are all derived from :class:`RunSettings`: a setting added here, with its bound and its one
line of help, is accepted everywhere (``tests/test_settings.py`` holds them together). Where a
run's output goes and which rows it runs (``--output-dir``, ``--scenario``) are each command's own.
A leaf: it imports nothing of the package but the defaults (models imports it).
"""

from __future__ import annotations

import typing
from typing import Annotated, Literal

import msgspec

from tracecore_perf import defaults

IsolationMode = Literal["forkserver", "spawn"]
KeepRuns = Literal["all", "failed", "none"]


def _help(text: str, **bounds: float) -> msgspec.Meta:
    return msgspec.Meta(description=text, **bounds)


class RunSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A run's settings, a line of help each (the flag's ``--help``)."""

    episodes: Annotated[int, _help("episodes to run", ge=1)] = defaults.EPISODES
    workers: Annotated[int, _help("episodes in parallel", ge=1)] = defaults.WORKERS
    timeout: Annotated[
        float,
        _help(
            f"seconds per episode before its process tree is killed (at least {defaults.MIN_TIMEOUT_S:g})",
            ge=defaults.MIN_TIMEOUT_S,
        ),
    ] = defaults.TIMEOUT_S
    strict_spec: Annotated[bool, _help("fail episodes whose artifact breaks TraceCore's spec")] = False
    compress: Annotated[bool, _help("also write perf-artifacts-<stamp>.zip")] = False
    isolation: Annotated[
        IsolationMode | None, _help("how episode processes start (default: forkserver where the system can fork, else spawn)")
    ] = None
    python: Annotated[
        str | None, _help("interpreter (with TraceCore installed) that runs the episodes (default: the one running this)")
    ] = None
    keep_runs: Annotated[KeepRuns, _help("TraceCore run artifacts left in the run directory")] = defaults.KEEP_RUNS  # type: ignore[assignment]
    sample_interval: Annotated[float, _help("seconds between resource samples", gt=0)] = defaults.SAMPLE_INTERVAL_S
    warmup: Annotated[
        int,
        _help("episodes of each scenario (agent, task) the zygote runs and discards before forking workers (forkserver)", ge=0),
    ] = defaults.WARMUP
    # None: no limit, only ever a run's from before the limit existed (its manifest records none),
    # which --resume goes on with as it ran; no flag or matrix key gives it
    memory_limit: Annotated[
        Annotated[int, msgspec.Meta(ge=defaults.MIN_MEMORY_LIMIT_BYTES)] | None,
        _help(
            "each episode's memory (data segment, RLIMIT_DATA): bytes, or with a unit (512MiB, 4GiB); an episode over "
            "it fails, naming it, and the run goes on"
        ),
    ] = defaults.MEMORY_LIMIT_BYTES
    sandbox: Annotated[
        bool,
        _help(
            "run each episode in its own user, mount, PID and network namespaces: only its scratch directory is "
            "writable, the run directory is hidden, no process outside its own is visible, no network (Linux; "
            "costs milliseconds per episode, measured in docs/containment.md)"
        ),
    ] = False
    instructions: Annotated[
        bool,
        _help(
            "count each episode's instructions under Valgrind (callgrind): figures the host's load cannot move, for "
            "compare, history and CI gates; each episode is kept to one process (it cannot fork or exec), and a count "
            "its agent switched off or forged fails the row; time figures are inflated by Valgrind (forkserver; needs "
            "valgrind)"
        ),
    ] = False
    counted_per_row: Annotated[
        int,
        _help(
            "--instructions: the first episodes of each scenario row counted under Valgrind; the row's other episodes "
            "run natively, for time and the kernel's figures, marked native_only (0: count every episode)",
            ge=0,
        ),
    ] = defaults.COUNTED_PER_ROW


NAMES: tuple[str, ...] = RunSettings.__struct_fields__
SIZES = frozenset({"memory_limit"})  # settings in bytes: their flags take units (units.parse_size)


def described() -> list[tuple[str, object, object, str]]:
    """Each setting: (name, its type as msgspec.inspect sees it, bounds included; its default;
    its help), in the struct's order."""
    import msgspec.inspect as inspect

    out = []
    for field in inspect.type_info(RunSettings).fields:
        kind = field.type
        text = ""
        if isinstance(kind, inspect.Metadata):
            text = (kind.extra_json_schema or {}).get("description", "")
            kind = kind.type
        out.append((field.name, kind, field.default, text))
    return out


# How a manifest's record of the settings is read: RunSettings' fields and types without their
# bounds. A record of a past run reads as it was, whatever today's bounds (a published run stays
# readable by check, compare, report); ``published.recorded`` holds it to them where a run goes on
# from it (--resume).
_UNBOUNDED = typing.get_type_hints(RunSettings)  # without include_extras: each type, its Annotated bounds dropped
AsRecorded = msgspec.defstruct(
    "AsRecorded",
    [(field.name, _UNBOUNDED[field.name], field.default) for field in msgspec.structs.fields(RunSettings)],
    kw_only=True,
    frozen=True,
    module=__name__,
)
