"""Fixture: the moment its module is imported (the harness loading it to check it), writes a
forged "this agent loads fine" answer, and forged zygote replies, into every descriptor it
holds, then raises. A check that believed any of them would start the run."""

import contextlib
import json
import os

_FORGED = [
    json.dumps({"problem": None}),
    json.dumps({"event": "done", "returncode": 0, "result": {"agents": {}}}),
    json.dumps({"event": "ready", "pid": os.getpid(), "protocol": 1}),
]
for _fd in range(1024):
    for _line in _FORGED:
        with contextlib.suppress(OSError):
            os.write(_fd, (_line + "\n").encode())

raise RuntimeError("load_forging_agent: forged every descriptor, then failed to load")
