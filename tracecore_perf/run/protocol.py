"""The zygote/worker protocol, harness side: one msgspec Struct per message, each way.

The harness talks to the zygote over one Unix socket and to each worker over a socket of its
own, in JSON lines. The episode side (``run/episode/``) is standard library only, so that
any interpreter with TraceCore can run it: it builds and reads these messages as plain dicts,
and ``tests/test_protocol.py`` holds both sides to these Structs. Who sends what, and when,
is the table in ``docs/architecture.md``.

Commands carry their name in ``cmd``, answers in ``event``. Both sides greet with ``Ready``
and its ``protocol``; the harness refuses a peer of another ``PROTOCOL_VERSION``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from tracecore_perf.models import ArtifactFacts

# defined once, for both sides (the episode side is standard library only)
from tracecore_perf.run.episode.constants import PROTOCOL_VERSION as PROTOCOL_VERSION


class _Command(msgspec.Struct, tag_field="cmd", forbid_unknown_fields=True):
    pass


class _Event(msgspec.Struct, tag_field="event", forbid_unknown_fields=True):
    pass


# --- harness -> zygote -------------------------------------------------------------------


class Warm(_Command, tag="warm"):
    """Import and warm TraceCore for the scenario (forkserver); answered by ``Warmed``."""

    scenario: list[dict[str, Any]]


class Log(_Command, tag="log"):
    """From now on write stdout/stderr (inherited by workers) to ``path``; ``Logging``."""

    path: str


class Spawn(_Command, tag="spawn"):
    """Fork a worker for the socket sent along (SCM_RIGHTS); answered by ``Spawned``."""


class Probe(_Command, tag="probe"):
    """Resolve agent files and task refs and name the interpreter and the code to seal (no
    agent's code runs: ``agent_check`` loads them, elsewhere). ``CallDone``."""

    cwd: str
    agents: list[str]
    task_refs: list[str]
    deadline_s: float
    sandbox: bool = False  # also try the namespaces --sandbox needs
    single_process: bool = False  # also try the filter --instructions keeps each episode to one process with
    # only that filter, nothing resolved or named (instruction mode: the zygote under Valgrind,
    # whose native twin of the same interpreter answers the rest, ~50 times faster)
    light: bool = False


class Metrics(_Command, tag="metrics"):
    """TraceCore's metrics pipeline over the run directory ``cwd``; ``CallDone``."""

    cwd: str
    limit: int
    deadline_s: float


class Rehearse(_Command, tag="rehearse"):
    """Warm-up: run ``episodes`` episodes of each row in the zygote itself, in a scratch
    directory under ``scratch_root``, each within ``deadline_s``, and discard them; answered
    by ``Rehearsed``. Sent after validation, before any worker is forked."""

    rows: list[dict[str, Any]]  # {agent (absolute path), agent_label, task_ref, seed}
    episodes: int
    scratch_root: str
    deadline_s: float
    # every agent file the episodes load (absolute paths, the user's own too), compiled once
    # in the zygote before the rows run (no agent code runs for it)
    agent_files: list[str] = []


class Reap(_Command, tag="reap"):
    """Kill and reap every process re-parented to the zygote; answered by ``Reaped``."""


class Exit(_Command, tag="exit"):
    """Stop (a zygote: its workers first); answered by ``Bye``."""


# --- harness -> worker -------------------------------------------------------------------


class Run(_Command, tag="run"):
    """Run one episode; answered by ``Done`` when its process has ended."""

    agent: str  # the absolute path the episode loads
    agent_label: str  # the name its artifact records
    task_ref: str
    seed: int
    strict_spec: bool
    scratch_root: str
    runs_dir: str
    log_path: str
    output_cap: int
    memory_limit: int | None = None  # the episode process's RLIMIT_DATA, bytes
    sandbox: bool = False  # namespaces of its own (episode/sandbox.py)
    sandbox_hidden: list[str] = []  # paths it must not see (the run directory), absolute and resolved
    # kept to one process (sandbox.forbid_new_processes): every episode of an instruction run,
    # counted or native (a twin, a replay, one past --counted-per-row), so that each does the
    # work a counted one can; a worker under Valgrind keeps its episodes so whatever this says
    single_process: bool = False
    # explain's evidence (instruction mode, the first counted episode of a scenario row): where
    # the worker keeps the episode's callgrind profile, or, with ``trace_python`` (a native
    # replay), the bytecodes its Python functions executed (episode/pyprofile.py)
    profile_path: str | None = None
    profile_dir: list[int] | None = None  # that folder's device and inode, as the harness made it
    trace_python: bool = False


class Kill(_Command, tag="kill"):
    """Kill the episode in flight: SIGTERM, SIGKILL after ``grace`` seconds. Ignored idle."""

    grace: float


# --- zygote or worker -> harness -------------------------------------------------------


class Ready(_Event, tag="ready"):
    """The first line either role sends."""

    pid: int
    protocol: int


class Warmed(_Event, tag="warmed"):
    pass


class Logging(_Event, tag="logging"):
    pass


class Spawned(_Event, tag="spawned"):
    pid: int


class Reaped(_Event, tag="reaped"):
    pass


class Rehearsed(_Event, tag="rehearsed"):
    """What of the warm-up failed (one line each); an empty list: every row is warm."""

    failures: list[str]


class CallDone(_Event, tag="call_done"):
    """The answer to ``Probe`` or ``Metrics``, computed in a forked child of the zygote."""

    returncode: int
    result: dict[str, Any] | None = None
    result_error: str | None = None


class Done(_Event, tag="done"):
    """A worker's account of one episode process, from what it observed.

    ``returncode`` follows subprocess conventions: negative for death by signal.
    ``result`` is the episode's own report as the worker received it (a JSON object, not yet
    checked against :class:`~tracecore_perf.models.ChildResult`; its artifact taken out),
    None when it died before reporting or reported something unusable (``result_error`` says
    what). ``artifact`` is set when the report claimed a finished run and carried TraceCore's
    artifact for its run id, which the worker placed in the run; ``artifact_error`` says why
    not otherwise. ``host_fault``: the episode could not be recorded because of the host (its
    artifact could not be placed: the disk full, the run's folders read-only, without write
    permission or gone; nothing of it left in the run): no row, the harness stops the run
    and ``--resume`` runs the episode again. ``instructions``: in instruction mode, the episode process's user-space
    instructions from fork to exit as callgrind counted them (None otherwise, or when the
    process was killed before it could write them); ``count_error``, in instruction mode, why
    there is no such figure (a count file replaced, counting zeroed or switched off).
    """

    returncode: int
    killed: bool
    cpu_user_s: float
    cpu_sys_s: float
    max_rss_bytes: int
    output_bytes: int
    leftover_processes: int
    minor_faults: int = 0  # the kernel's count for the episode process and what it left behind
    result: dict[str, Any] | None = None
    result_error: str | None = None
    artifact: ArtifactFacts | None = None
    artifact_error: str | None = None
    host_fault: str | None = None
    profile_sha256: str | None = None  # the profile kept at the Run's ``profile_path``, None when none was
    instructions: int | None = None
    count_error: str | None = None


class Bye(_Event, tag="bye"):
    """The last line: the process's own CPU time and minor page faults, for the harness's accounting."""

    cpu_user_s: float = 0.0
    cpu_sys_s: float = 0.0
    minor_faults: int = 0


ZygoteEvent = Ready | Warmed | Logging | Spawned | Rehearsed | Reaped | CallDone | Bye
WorkerEvent = Ready | Done | Bye

zygote_events = msgspec.json.Decoder(ZygoteEvent)
worker_events = msgspec.json.Decoder(WorkerEvent)
encoder = msgspec.json.Encoder()
