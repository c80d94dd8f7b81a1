"""The one set of run settings: what a run of episodes is told, whoever starts it.

``run``'s flags, ``ab``'s flags (the same for both sides), a matrix file's keys (its top
level and each cell) and the manifest's record of a run are all derived from
:class:`RunSettings`: a setting added here, with its bound and its one line of help, is
accepted everywhere (``tests/test_settings.py`` holds them together). Where a run's output
goes and which rows it runs (``--output-dir``, ``--scenario``) are each command's own.
A leaf: it imports nothing of the package but the defaults and the contracts' literals.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from tracecore_perf import defaults
from tracecore_perf.models import IsolationMode, KeepRuns


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
    memory_limit: Annotated[
        int,
        _help(
            "each episode's memory (data segment, RLIMIT_DATA): bytes, or with a unit (512MiB, 4GiB); an episode over "
            "it fails, naming it, and the run goes on",
            ge=defaults.MIN_MEMORY_LIMIT_BYTES,
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


# Where the manifest records each setting: under the setting's own name, but for these. The
# manifest keeps the settings flat, at its top level, rather than nesting a RunSettings: TraceCore's
# performance guide names the run descriptor's fields (episode count, worker count, timeout,
# strict-spec mode, ...), and a nested copy would record each setting twice. A RunSettings goes into
# a manifest in one place (harness._new_manifest) and comes back out in one (``recorded``).
MANIFEST_NAMES = {"python": "interpreter.executable", "sample_interval": "sample_interval_s"}


def recorded(manifest, source: str = "the manifest") -> RunSettings:
    """The settings a run's manifest records (``manifest``: a models.Manifest): what
    ``--resume`` goes on with, held to the same bounds as a new run's flags (a manifest can be
    edited): UsageError naming ``source`` and the manifest's field otherwise."""
    from tracecore_perf.errors import UsageError

    values = {}
    for name in NAMES:
        value = manifest
        for part in MANIFEST_NAMES.get(name, name).split("."):
            value = getattr(value, part)
        values[name] = value
    try:  # a setting a run from before it recorded as None (memory_limit) goes on as that run did
        msgspec.convert({k: v for k, v in values.items() if v is not None}, RunSettings)
    except msgspec.ValidationError as exc:
        problem, _, where = str(exc).rpartition(" - at `$.")
        name = where.rstrip("`")
        field = MANIFEST_NAMES.get(name, name)
        raise UsageError(f"{source}: {field} {getattr(manifest, field, values.get(name))!r}: {problem or exc}") from None
    return RunSettings(**values)
