"""The ``--strict-spec`` check: TraceCore's spec check of an artifact, with its schema walk
answered by jsonschema-rs where that finds the artifact valid (the same answer, a fraction of
the instructions), and the schema read once, before any episode."""

from __future__ import annotations

import contextlib

from .json_codec import load_reindent
from .state import side


def spec_errors(artifact: dict) -> list[str]:
    """TraceCore's spec check of the artifact (``--strict-spec``): its first errors.

    TraceCore's check is a jsonschema walk of the artifact over its artifact schema (~10 M
    instructions for a 13 KB artifact, two thirds of a worker's work per episode) plus its
    own rules. Where jsonschema-rs compiled that schema (:func:`load_spec_walk`) and finds
    the artifact valid, TraceCore's check runs with the walk's answer ("no schema errors")
    already given; anything jsonschema-rs rejects, or cannot read, gets TraceCore's whole
    check, so every error is TraceCore's own words. tests/test_spec_walk.py holds the two
    answers equal over the shipped agents' artifacts and each way to break the schema. The
    artifact is decoded JSON: lists, never tuples (which jsonschema-rs reads as arrays and
    jsonschema does not)."""
    from agent_bench.runner import spec_check

    warm_verdict()  # loaded in the zygote already; here for a caller that is not a worker
    if side.schema is None:  # a checker not built as _schema_walk_answered expects: as it ships
        return _first_errors(spec_check.check_spec_compliance(artifact))
    valid = False
    if side.schema_is_valid is not None:
        try:
            valid = bool(side.schema_is_valid(artifact))
        except Exception:  # noqa: BLE001 - a value jsonschema-rs cannot convert: TraceCore's walk decides
            valid = False
    with _schema_walk_answered(spec_check, valid):
        return _first_errors(spec_check.check_spec_compliance(artifact))


def _first_errors(report: dict) -> list[str]:
    return [str(error)[:500] for error in list(report["errors"])[:20]]


def load_spec_walk() -> None:
    """TraceCore's artifact schema, read once by its own ``_load_schema`` (where this
    TraceCore's checker is built the way :func:`_schema_walk_answered` expects; otherwise
    every artifact gets TraceCore's check as it ships), and compiled by jsonschema-rs where
    the episode interpreter has it. Read before any episode: installed code, it is under the
    run's seal, and a change to it taints the run without reaching a verdict."""
    try:
        from agent_bench.runner import spec_check
    except ImportError:
        return
    if not (callable(getattr(spec_check, "_load_schema", None)) and callable(getattr(spec_check, "_validate_jsonschema", None))):
        return
    schema = spec_check._load_schema()
    if not isinstance(schema, dict) or "$schema" not in schema:
        return
    side.schema = schema
    try:
        import jsonschema  # noqa: F401 - without it TraceCore's check says so on every artifact: leave that to it
        import jsonschema_rs

        # the draft TraceCore's walk uses (jsonschema.Draft202012Validator), whatever the
        # schema's $schema says
        side.schema_is_valid = jsonschema_rs.Draft202012Validator(schema).is_valid
    except Exception:  # noqa: BLE001 - not installed, or a schema it cannot compile: TraceCore's walk
        return


@contextlib.contextmanager
def _schema_walk_answered(spec_check, valid: bool):
    """TraceCore's check, for one call, with the schema it read before any episode (not read
    again from disk, where an episode may have changed it) and, when jsonschema-rs found the
    artifact ``valid``, its schema walk answered "no errors"; restored after. Only in the
    worker, which is single-threaded and forks no episode during the call."""
    load, walk = spec_check._load_schema, spec_check._validate_jsonschema
    spec_check._load_schema = lambda: side.schema
    if valid:
        spec_check._validate_jsonschema = lambda result, schema: []
    try:
        yield
    finally:
        spec_check._load_schema, spec_check._validate_jsonschema = load, walk


# What the harness uses of TraceCore beyond ``run()`` and the loaders, and only where the
# episode interpreter's TraceCore has it: both arrived in 1.0.0 (0.9.5 is the oldest release
# with the runner, the toy agent and the scenario's tasks).
OPTIONAL_TRACECORE = {"spec_check": "agent_bench.runner.spec_check", "metrics": "agent_bench.runner.metrics"}


def has_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


def warm_verdict() -> None:
    """Load, in the zygote and before any episode, in both isolation modes, all the worker's
    own verdict on an episode runs: TraceCore's runner (its artifact hash), its spec check
    with its jsonschema stack, the compiled schema walk (:func:`load_spec_walk`), msgspec's
    decoder and re-indenter. Every
    worker inherits them loaded, so nothing an episode writes into their installed files
    reaches a worker's verdict; and those files are under the run's seal (the probe names
    them: ``probe._loaded_packages``), so no replacement zygote starts from changed ones. Once
    per process."""
    if side.verdict_warm:
        return
    side.verdict_warm = True
    with contextlib.suppress(ImportError):
        import agent_bench.runner.runner  # noqa: F401 - its hash, which relabel recomputes
    if has_module(OPTIONAL_TRACECORE["spec_check"]):
        from agent_bench.runner.spec_check import check_spec_compliance

        check_spec_compliance({})
        load_spec_walk()
    load_reindent()
