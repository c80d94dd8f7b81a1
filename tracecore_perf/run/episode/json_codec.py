"""JSON read and re-indented with msgspec where the episode interpreter has it (it is optional:
``--python`` may name an interpreter that has TraceCore and nothing of ours), the standard
library's ``json`` otherwise; the same values and bytes either way."""

from __future__ import annotations

import json

from .state import side


def load_reindent() -> None:
    """In the zygote (workers inherit it; a spawned episode never needs it): msgspec is
    optional, ``--python`` may name an interpreter that has TraceCore and nothing of ours."""
    try:
        from msgspec.json import decode
        from msgspec.json import format as reindent
    except ImportError:
        side.reindent = side.decode = None
    else:
        side.reindent, side.decode = reindent, decode


def loads(raw: bytes) -> object:
    """``json.loads``, the same values: msgspec's decoder where the zygote has it, and the
    standard library's for what msgspec does not read (NaN, a lone surrogate, a number out of
    range), which ``json.dumps`` writes and TraceCore's artifacts may hold."""
    if side.decode is not None:
        try:
            return side.decode(raw)
        except ValueError:  # msgspec.DecodeError and ValidationError are ValueErrors
            pass
    return json.loads(raw)
