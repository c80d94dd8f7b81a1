"""Sizes in bytes as people write them: ``512MiB``, ``1GiB``, ``4G``, ``1048576``. Standard
library only: ``python -m tracecore_perf`` parses flags before it imports anything else."""

from __future__ import annotations

import re

_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes in ``text``: a number of bytes, or a number with a binary unit (K, M, G, T, P;
    ``KiB``, ``MB`` and ``G`` all mean powers of 1024). Raises ValueError."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (e.g. 512MiB, 4GiB, or bytes)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def format_size(size: int) -> str:
    """``size`` bytes in the largest binary unit that keeps it whole or one decimal (``512 MiB``)."""
    for unit, factor in (("PiB", 1024**5), ("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            value = size / factor
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size} B"
