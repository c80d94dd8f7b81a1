"""What both sides of the boundary agree on: the harness imports these from here, the episode
side too. Standard library only."""

from __future__ import annotations

import errno
import re

# Both sides greet with it; the harness refuses a peer of another version (protocol.py).
PROTOCOL_VERSION = 2
RESULT_FD = 3  # where an episode process finds its result pipe
# Instruction mode (``--instructions``): the environment variable naming the folder callgrind
# writes each process's count into (spawn.py sets it, the zygote reads it).
CALLGRIND_DIR_ENV = "TRACECORE_PERF_CALLGRIND_DIR"
# What an episode reports is its result (a few hundred bytes) and TraceCore's artifact (tens
# of KB; LLM-heavy ones a few MB). More than this is an episode misbehaving.
RESULT_CAP_BYTES = 64 * 1024 * 1024
# The largest artifact file the worker places; integrity reads none larger.
ARTIFACT_CAP_BYTES = 64 * 1024 * 1024
# What of the report the worker forwards to the harness (the result without the artifact).
FORWARD_CAP_BYTES = 64 * 1024
EXIT_CHILD_SETUP_FAILED = 70
RUN_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")  # TraceCore's run ids (runlog._validate_run_id)
# What the host, not the episode, did when an artifact cannot be placed in the run: the disk or
# the quota is full, the run's folders lost their write permission, became read-only or are
# gone (the output folder removed or renamed). Such an episode is left unrecorded (``Done``'s
# ``host_fault``): the harness stops the run, and ``--resume`` runs the episode again.
HOST_FAULTS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT})
