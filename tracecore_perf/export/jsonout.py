"""``--format json``: the result Struct as JSON, as other tools (and the report) read it."""

from __future__ import annotations

import msgspec

from tracecore_perf.history.models import HistoryVerdict
from tracecore_perf.verdicts.models import Comparison, Verdict


def render(result: Verdict | Comparison | HistoryVerdict) -> str:
    return msgspec.json.format(msgspec.json.encode(result), indent=2).decode() + "\n"
