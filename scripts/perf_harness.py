"""The entry point of TraceCore's performance-guide scaffold, kept so its documented commands still work:

    python scripts/perf_harness.py --episodes 24 --workers 4 --strict-spec

It takes exactly the flags of ``python -m tracecore_perf``.
"""

import sys
from pathlib import Path

try:
    from tracecore_perf.cli import main
except ModuleNotFoundError:  # run from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tracecore_perf.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
