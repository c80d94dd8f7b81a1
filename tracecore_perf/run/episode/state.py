"""The episode side's one piece of mutable state, :data:`side`: what the zygote loads or
learns once and every process it forks inherits (fork copies it), and what a worker tracks
between an episode's end and its row reaching the harness."""

from __future__ import annotations


class EpisodeSide:
    """One per process of the episode interpreter (:data:`side`), inherited across fork."""

    def __init__(self) -> None:
        self.libc = None  # ctypes' handle on the C library, loaded on first use (system.prctl)
        # msgspec.json.format and .decode, when the zygote could import them
        # (artifact.load_reindent): a report's JSON read ~5x faster than json.loads
        self.reindent = None
        self.decode = None
        # Instruction mode (``--instructions``): the zygote runs under Valgrind's callgrind,
        # which writes one ``callgrind.out.<pid>`` per process into this folder as the process
        # exits, its counters zeroed at each fork (--zero-before=PyOS_AfterFork_Child). Set
        # from the environment by the zygote (``zygote.start``) and inherited by its workers.
        self.callgrind_dir: str | None = None
        # Instructions per second of user CPU this interpreter executes under callgrind,
        # measured in the zygote on a fixed piece of Python (``callgrind.calibrate``). An
        # episode that claims far fewer for the CPU it used had its counting zeroed or
        # switched off (Valgrind client requests).
        self.counted_rate: float | None = None
        # Modules the zygote imports for the harness's own work, not TraceCore's
        # (warmup.harness_imports): an episode process takes them out of sys.modules.
        self.harness_modules: set[str] = set()
        self.verdict_warm = False  # warmup.warm_verdict ran in this process
        self.sandbox = None  # the sandbox module, loaded on first use (load_sandbox)
        # --instructions' seccomp filter (sandbox.single_process_filter), built once in the
        # zygote, installed by each episode (forbid_new_processes)
        self.single_process_filter: tuple | None = None
        self.schema_is_valid = None  # jsonschema-rs's compiled is_valid over TraceCore's artifact schema
        self.schema: dict | None = None  # TraceCore's artifact schema, as its _load_schema read it before any episode
        # a traced replay of an episode (explain): its pyprofile.BytecodeTracer, from the fork on
        self.python_trace = None
        self.placed: str | None = None  # the artifact this worker placed for the episode it has not yet reported
        # each agent file's code, compiled once in the zygote (warmup.keep_compiled): absolute
        # path -> code object, which every episode's import of that file takes instead of
        # compiling its source again (or reading its .pyc)
        self.agent_code: dict[str, object] = {}


side = EpisodeSide()


def load_sandbox():
    """sandbox.py (``--sandbox``, and one process per episode under ``--instructions``), loaded
    on first use, from its source like every module of this package."""
    if side.sandbox is None:
        from . import sandbox

        side.sandbox = sandbox
    return side.sandbox


def forbid_new_processes() -> None:
    """This process can start no other from now on (sandbox.forbid_new_processes), with the
    filter the zygote built (built now where it was not)."""
    sandbox = load_sandbox()
    if side.single_process_filter is None:
        side.single_process_filter = sandbox.single_process_filter()
    sandbox.forbid_new_processes(side.single_process_filter)
