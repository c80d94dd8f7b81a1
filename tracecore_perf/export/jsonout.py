"""``--format json``: the result Struct as JSON, as other tools (and the report) read it.
Printed where a CI runner may read it, so with ``escape.json`` (the same document)."""

from __future__ import annotations

import msgspec

from tracecore_perf.escape import json
from tracecore_perf.history.models import HistoryVerdict
from tracecore_perf.verdicts.models import Comparison, Verdict


def render(result: Verdict | Comparison | HistoryVerdict) -> str:
    return json(msgspec.json.format(msgspec.json.encode(result), indent=2).decode()) + "\n"
