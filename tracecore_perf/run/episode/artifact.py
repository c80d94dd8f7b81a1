"""TraceCore's artifact on the worker's side: its bytes as ``persist_run`` writes them (msgspec
where the zygote has it), the bound on their size, its size and telemetry, and placing it in
the run (recorded under the agent's name, spec-checked, never over an existing file), or why
not: the episode's fault (``artifact_error``) or the host's (``host_fault``)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os

from . import spec
from .constants import ARTIFACT_CAP_BYTES, HOST_FAULTS, RUN_ID
from .state import side
from .system import run_folder, write_all


def persist_bytes(artifact: dict, compact: str | None = None) -> bytes:
    """``artifact`` as TraceCore's ``persist_run`` writes it: ``json`` with ``indent=2`` and
    ``ensure_ascii=False``. The standard library indents in pure Python (~0.5 ms for a
    13 KB artifact); when msgspec is importable (it is in the harness's own interpreter) the
    C encoder's compact text is re-indented by msgspec, the same bytes ~5x faster
    (tests/test_protocol.py holds the two together). NaN and Infinity, which ``json``
    writes and msgspec does not read, take the standard library's path. ``compact``:
    ``json.dumps(artifact, ensure_ascii=False)`` when the caller already has it."""
    if side.reindent is not None:
        try:
            compact = json.dumps(artifact, ensure_ascii=False) if compact is None else compact
            return side.reindent(compact.encode("utf-8"), indent=2)
        except ValueError:  # msgspec.DecodeError is one: NaN or Infinity in the artifact
            pass
    return json.dumps(artifact, ensure_ascii=False, indent=2).encode("utf-8")


def persist_bytes_within(artifact: dict, compact: str, cap: int) -> bytes | None:
    """:func:`persist_bytes`, or None when those bytes would be more than ``cap``, found out
    without making them. Indentation can multiply an artifact's size: each value on a line of
    its own behind two spaces per level, so 400 nested lists around a list of zeros grow ~400
    times (a 60 MB report, 24 GB). :func:`_indented_size_bound` clears ordinary artifacts
    with C-speed byte operations; any other is measured by the standard library's encoder
    piece by piece (nothing kept), which stops at ``cap``."""
    if _indented_size_bound(compact, cap) > cap:
        chars = 0
        for piece in json.JSONEncoder(ensure_ascii=False, indent=2).iterencode(artifact):
            chars += len(piece)
            if chars > cap:  # a character is at least one byte
                return None
    data = persist_bytes(artifact, compact)
    return data if len(data) <= cap else None


def _indented_size_bound(compact: str, cap: int) -> int:
    """An upper bound on the size of ``compact`` (``json.dumps(ensure_ascii=False)``) written
    with ``indent=2``, or ``cap + 1`` when it cannot show one within ``cap``; C-speed byte
    operations only (a few ms a megabyte where the bracket count alone cannot clear it). Each
    value and each closing bracket gets a line of its own, indented two spaces a level: at
    most ``commas + 2 * opening brackets`` lines of ``1 + 2 * depth`` more bytes. The depth is
    found from the brackets outside strings, innermost pairs removed one level per pass,
    stopping once it is deeper than ``cap`` allows."""
    # the size in bytes without encoding the text (the worker does so once, to write it)
    size = len(compact) if compact.isascii() else len(compact.encode("utf-8", "surrogatepass"))
    opens, commas = compact.count("[") + compact.count("{"), compact.count(",")
    lines = commas + 2 * opens + 1
    if size + lines * (1 + 2 * opens) <= cap:  # no deeper than its brackets: most artifacts
        return size + lines * (1 + 2 * opens)
    if size > cap:
        return cap + 1
    deepest = (cap - size) // lines // 2  # the most depth the cap allows
    raw = compact.encode("utf-8", "surrogatepass")
    if deepest < 1:  # an artifact is an object: one level at least
        return cap + 1
    # Escaped backslashes and quotes out, then only quotes and brackets kept; a pair of
    # adjacent quotes (an empty string, or two strings with nothing between) goes too, so
    # few strings are left to cut out: those that hold brackets.
    kept = raw.replace(b"\\\\", b"").replace(b'\\"', b"").translate(_BRACES_AS_BRACKETS, _ALL_BUT_QUOTES_AND_BRACKETS)
    brackets = _outside_strings(kept.replace(b'""', b""))
    depth = 0
    while brackets and depth <= deepest:
        inner = brackets.replace(b"[]", b"")  # one level a pass: replace does not look again
        if inner == brackets:  # not nested pairs: not a text json wrote
            return cap + 1
        brackets, depth = inner, depth + 1
    return size + lines * (1 + 2 * depth) if not brackets else cap + 1


def _outside_strings(kept: bytes, piece: int = 1 << 16) -> bytes:
    """The bytes of ``kept`` (quotes and brackets only) outside its strings, 64 KiB at a time:
    a text of a million strings that hold brackets never becomes a million objects at once."""
    outside, inside = [], False
    for start in range(0, len(kept), piece):
        parts = kept[start : start + piece].split(b'"')
        outside.append(b"".join(parts[1 if inside else 0 :: 2]))
        inside ^= len(parts) % 2 == 0  # an odd number of quotes in this piece
    return b"".join(outside)


_ALL_BUT_QUOTES_AND_BRACKETS = bytes(set(range(256)) - set(b'"[]{}'))
_BRACES_AS_BRACKETS = bytes.maketrans(b"{}", b"[]")  # depth is depth, whichever the kind


def scaffold_bytes(compact: str) -> int:
    """TraceCore's performance-guide scaffold's artifact size, ``len(json.dumps(artifact,
    sort_keys=True).encode("utf-8"))``, from ``compact = json.dumps(artifact,
    ensure_ascii=False)``, which the worker makes anyway to write the artifact: the same
    items with the same separators in another key order (the same length), and the scaffold
    writes each character from DEL (0x7f) up as ``\\uXXXX`` (six characters; a surrogate
    pair, twelve, beyond the BMP) where ``compact`` has the character itself. One encoding
    fewer per episode (tests/test_protocol.py holds the two together)."""
    if compact.isascii() and "\x7f" not in compact:
        return len(compact)
    return len(compact) + sum(5 if ch <= "\uffff" else 11 for ch in compact if ch >= "\x7f")


def telemetry(artifact: dict, compact: str) -> dict:
    """Artifact size (:func:`scaffold_bytes` of ``compact``) and LLM telemetry volume, counted
    as TraceCore's metrics module counts it: ``llm_trace`` entries of each action-trace step,
    prompt/completion bytes, tokens."""
    entries = prompt = completion = tokens = 0
    for step in artifact.get("action_trace") or []:
        if not isinstance(step, dict):
            continue
        for call in step.get("llm_trace") or []:
            if not isinstance(call, dict):
                continue
            entries += 1
            request = call.get("request") or {}
            response = call.get("response") or {}
            if isinstance(request.get("prompt"), str):
                prompt += len(request["prompt"].encode("utf-8"))
            if isinstance(response.get("completion"), str):
                completion += len(response["completion"].encode("utf-8"))
            if isinstance(response.get("tokens_used"), int):
                tokens += response["tokens_used"]
    return {
        "artifact_bytes": scaffold_bytes(compact),
        "llm_trace_entries": entries,
        "prompt_bytes": prompt,
        "completion_bytes": completion,
        "tokens_used": tokens,
    }


def relabel(artifact: dict, label: str) -> None:
    """A packaged agent is loaded by absolute path (so nothing in a working directory can
    stand in for it) but recorded under the name the user gave, as TraceCore records it
    when it resolves that name itself; the artifact hash is recomputed by TraceCore."""
    artifact["agent"] = artifact["agent_ref"] = label
    try:
        from agent_bench.runner.runner import _inject_artifact_hash
    except ImportError:  # an older or newer TraceCore without it: keep its hash as it was
        return
    artifact.pop("artifact_hash", None)
    _inject_artifact_hash(artifact)


def place_artifact(artifact: object, run_id: object, job: dict) -> dict:
    """Check that the reported artifact is the reported run's, record it under the agent's
    name, spec-check it (``--strict-spec``), measure it, and write it into the run's
    ``.agent_bench/runs`` exactly as TraceCore's ``persist_run`` writes it (never over an
    existing file). Returns ``artifact`` (what the harness records) and ``spec_errors``, or
    ``artifact_error`` (why the episode's claim is unverified), or ``host_fault`` (the host
    kept the artifact out of the run: a full disk, a lost permission, a folder gone; no
    half-written artifact is left)."""
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        return {"artifact_error": f"the result names no valid run id ({str(run_id)[:80]!r})"}
    if not isinstance(artifact, dict):
        return {"artifact_error": f"no TraceCore artifact for run id {run_id!r}"}
    if artifact.get("run_id") != run_id:
        return {"artifact_error": f"the artifact reported for run id {run_id!r} is another run's"}
    label = job.get("agent_label")
    try:
        if label and label != job.get("agent"):
            relabel(artifact, label)
        spec_errors = spec.spec_errors(artifact) if job.get("strict_spec") else None
        compact = json.dumps(artifact, ensure_ascii=False)  # the C encoder, once: written and measured
        data = persist_bytes_within(artifact, compact, ARTIFACT_CAP_BYTES)
        if data is None:
            return {
                "artifact_error": f"the artifact for run id {run_id!r} is more than {ARTIFACT_CAP_BYTES >> 20} MiB "
                "as TraceCore writes it (indented); not placed"
            }
        facts = telemetry(artifact, compact)
    except (ValueError, TypeError, RecursionError):
        return {"artifact_error": f"the artifact for run id {run_id!r} is not plain JSON"}
    except Exception as exc:  # noqa: BLE001 - TraceCore's hash or spec check on what an episode sent
        return {"artifact_error": f"the artifact for run id {run_id!r} is not one TraceCore can read ({type(exc).__name__})"}
    runs_dir = job.get("runs_dir")
    if runs_dir:
        target = os.path.join(runs_dir, f"{run_id}.json")
        run_dir = os.path.dirname(os.path.dirname(runs_dir))
        name = f"{run_id}.json"
        try:
            try:
                folder = run_folder(run_dir, (".agent_bench", "runs"))
            except FileNotFoundError:
                # Another episode deleted the folder (the evidence check reports it): put it
                # back, but never the run directory itself, so a run moved away stays gone.
                folder = run_folder(run_dir, (".agent_bench", "runs"), make=True)
        except OSError as exc:
            return _placing_failed(exc)
        try:
            try:
                out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=folder)
            except FileExistsError:
                return {"artifact_error": f"the run already holds an artifact with run id {run_id!r}"}
            except OSError as exc:
                return _placing_failed(exc)
            side.placed = target  # until the harness has the row: a worker that dies first takes it back
            try:
                write_all(out, data)
            except OSError as exc:
                # Half an artifact is no evidence: taken back, so the episode, run again by
                # --resume (a host fault) or failed (anything else), leaves nothing behind.
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=folder)
                forget_placed()
                return _placing_failed(exc)
            finally:
                os.close(out)
        finally:
            os.close(folder)
    return {
        "artifact": {
            "run_id": run_id,
            "success": artifact.get("success") is True,
            "failure_type": _short(artifact.get("failure_type")),
            "failure_reason": _short(artifact.get("failure_reason")),
            "file_bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest() if runs_dir else None,
            **facts,
        },
        "spec_errors": spec_errors,
    }


def _placing_failed(exc: OSError) -> dict:
    """Why an artifact could not be placed: a fault of the host (``host_fault``: no row, the
    run stops) or of what stands in the run (``artifact_error``: the episode's row)."""
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return {"artifact_error": "cannot place the artifact in the run: a link or a file stands in a folder's place"}
    why = f"cannot place the artifact in the run: {exc.strerror or exc}"
    if exc.errno in HOST_FAULTS:
        return {"host_fault": why}
    return {"artifact_error": why}


def forget_placed() -> None:
    side.placed = None


def take_back_placed() -> None:
    """The artifact placed for an episode whose row the harness never got, removed."""
    if side.placed is not None:
        with contextlib.suppress(OSError):
            os.unlink(side.placed)
    forget_placed()


def _short(value: object) -> str | None:
    return None if value is None else str(value)[:500]
