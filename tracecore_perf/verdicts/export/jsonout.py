"""``--format json``: the result Struct as JSON, as other tools (and the report) read it."""

from __future__ import annotations

import msgspec

from tracecore_perf.verdicts.export import Target
from tracecore_perf.verdicts.models import Comparison, Verdict


def write(result: Verdict | Comparison, target: Target) -> None:
    target.stream.write(msgspec.json.format(msgspec.json.encode(result), indent=2).decode() + "\n")
