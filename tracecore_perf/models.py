"""The typed contracts between the harness's stages.

Every value that crosses a stage boundary is one of these msgspec Structs: the scenario
rows the planner reads, the job the launcher sends to an episode process, the outcome it
gets back, the series row and monitor sample the writer streams to disk, and the
manifest and summary that are published. Field names from TraceCore's performance guide
are kept exactly; our additions sit beside them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import msgspec

from tracecore_perf.settings import RunSettings

FORMAT_VERSION = 3
"""The version of the published JSON (manifest and summary carry it as ``format_version``).
Raise it when a published field changes meaning or goes away; readers refuse a run of a newer
format, and read a run without the field (published before it existed) as version 0.
2: the manifest nests the run's settings (``Manifest.settings``); 0 and 1 kept each at its top
level, and are read by upgrading them as they are decoded (``published.decode_manifest``).
3: ``settings.counted_per_row`` (--instructions counts only each scenario row's first episodes);
a manifest of an older format counted every episode, and reads as ``counted_per_row`` 0."""
RunStatus = Literal["running", "complete", "interrupted", "resumed", "failed", "tainted"]


class ScenarioRow(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One line of a scenario: an agent on a task, with the seed the first episode gets."""

    agent: str
    task_ref: str
    seed: int = 0


class EpisodeJob(msgspec.Struct, frozen=True):
    """One planned episode. ``seed`` is the row's seed plus ``episode_index``."""

    episode_index: int
    scenario_row: int
    agent: str
    task_ref: str
    seed: int


# --- what comes back from the episode process ------------------------------------------


class ChildResult(msgspec.Struct, frozen=True):
    """What the episode process itself reports (written by ``run/episode/episode.py``), checked
    against these types by the harness: anything else is a "bad result".

    ``completed`` is false when TraceCore's ``run()`` raised; ``error`` then holds the
    exception type and message. The episode's claims decide nothing on their own: success
    comes from the artifact the worker verified (:class:`ArtifactFacts`).
    """

    completed: bool
    episode_s: float
    run_id: str | None = None
    error: str | None = None
    spec_errors: list[str] | None = None


class ArtifactFacts(msgspec.Struct, frozen=True):
    """What the worker read from TraceCore's artifact for the reported run id, after the
    episode process had exited, and placed into the run's ``.agent_bench/runs``."""

    run_id: str
    success: bool
    failure_type: str | None
    failure_reason: str | None
    file_bytes: int
    artifact_bytes: int  # the performance guide's figure: len(json.dumps(artifact, sort_keys=True))
    llm_trace_entries: int
    prompt_bytes: int
    completion_bytes: int
    tokens_used: int
    sha256: str | None = None  # of the bytes the worker placed: the evidence check holds the file to it


# --- what the writer streams -----------------------------------------------------------


class EpisodeRow(msgspec.Struct, kw_only=True):
    """One episode of the series: TraceCore's performance guide's fields, then the measurement fields."""

    episode: int
    episode_index: int
    agent: str
    task_ref: str
    seed: int
    success: bool
    wall_clock_s: float
    error: str | None
    artifact_bytes: int
    llm_trace_entries: int
    prompt_bytes: int
    completion_bytes: int
    tokens_used: int
    # additions: what makes a row a measurement
    episode_s: float | None
    queue_s: float
    started_s: float
    cpu_user_s: float
    cpu_sys_s: float
    max_rss_bytes: int
    returncode: int
    timed_out: bool
    scenario_row: int
    run_id: str | None = None
    failure_type: str | None = None
    output_bytes: int = 0
    attempt: int = 1
    # instruction mode: user-space instructions of the episode process from fork to exit
    # (Valgrind callgrind); None in a native run, or for an episode killed before its exit
    instructions: int | None = None
    # SHA-256 of the TraceCore artifact the worker placed for ``run_id``: the row is under the
    # series' keyed digest, so the artifact's bytes are held to this before anything is published
    artifact_sha256: str | None = None
    # the kernel's count of the episode process's minor page faults (its copy-on-write faults
    # after the fork among them); None in runs recorded before it was
    minor_faults: int | None = None
    # instruction mode: the same episode (agent, task, seed) run again natively, in a worker of
    # a native zygote, for the kernel's work a count cannot see; None when the twin failed
    native_cpu_user_s: float | None = None
    native_cpu_sys_s: float | None = None
    native_minor_faults: int | None = None
    native_error: str | None = None  # why the twin gave no figures (it failed: the episode is deterministic)
    # instruction mode, one episode per scenario row: its callgrind profile, and a traced native
    # replay's Python stacks (bytecodes per call stack), in the run directory's ``profiles/``,
    # each with the SHA-256 of what was kept (``explain`` reads nothing else under that name)
    profile: str | None = None
    profile_sha256: str | None = None
    python_profile: str | None = None
    python_profile_sha256: str | None = None
    # instruction mode: the episode was not meant to be counted (past its scenario row's
    # --counted-per-row): it ran only natively, in a worker of the native zygote; its time
    # figures are native, repeated in native_*, and ``instructions`` is None by design
    native_only: bool = False

    @property
    def artifact_digest(self) -> bytes | None:
        """``artifact_sha256`` as bytes; None when absent or not a SHA-256 in hex."""
        try:
            digest = bytes.fromhex(self.artifact_sha256 or "")
        except ValueError:
            return None
        return digest if len(digest) == 32 else None

    @property
    def cpu_s(self) -> float:
        """The kernel's CPU time of the episode process and its descendants, user + system
        (the kernel may book a short forked episode's time all as system)."""
        return self.cpu_user_s + self.cpu_sys_s


class Sample(msgspec.Struct, kw_only=True):
    """One reading of the monitor: the host, the harness, and the live episode processes."""

    t_s: float
    cpu_percent: float
    memory_total_bytes: int
    memory_available_bytes: int
    harness_rss_bytes: int
    harness_cpu_percent: float
    workers_rss_bytes: int
    episode_processes: int
    episode_rss_bytes: int
    episodes_done: int
    episodes_failed: int
    load_1m: float | None = None


# --- what is published -----------------------------------------------------------------


class HostContext(msgspec.Struct, kw_only=True):
    cpu_model: str
    logical_cores: int
    memory_total_bytes: int
    os: str
    kernel: str
    machine: str
    hostname: str
    load_avg_start: list[float] | None
    cpu_busy_percent_start: float | None
    quiet: bool
    quiet_reason: str | None


class EpisodeEnvironment(msgspec.Struct, kw_only=True):
    """What the episode interpreter had installed (its probe, ``run/episode/probe.environment``):
    an instruction count moves with how things are installed as well as with the code, so
    ``compare`` names every difference between two runs' environments."""

    distributions: dict[str, str]  # each installed distribution (normalized name) -> its version
    # installed in place from a source tree (editable, or found outside the site directories)
    editable: list[str] = msgspec.field(default_factory=list)
    # where TraceCore was installed from: "index", or "tree|vcs|archive <PEP 610 URL>"
    tracecore_source: str = ""
    implementation: str = ""  # sys.implementation.name


class Interpreter(msgspec.Struct, kw_only=True):
    executable: str
    python_version: str
    tracecore_version: str
    python_build: str = ""  # sys.version in full: build date and compiler (instruction counts depend on them)
    tracecore_dir: str = ""  # the agent_bench package episodes import (its files are under seal during the run)
    site_dirs: list[str] = msgspec.field(default_factory=list)  # where it starts from (.pth files under seal)
    # every package TraceCore installs (agent_bench, tasks): under seal by content
    tracecore_packages: list[str] = msgspec.field(default_factory=list)
    # the other installed packages its zygote had loaded code from before any agent's module
    # ran (the workers' verdict runs on jsonschema, jsonschema-rs, msgspec): under seal by
    # size, inode and change time
    loaded_packages: list[str] = msgspec.field(default_factory=list)
    # what its TraceCore does not have of what the harness uses beside run(): "spec_check"
    # (--strict-spec), "metrics" (perf-metrics); both arrived in TraceCore 1.0.0
    lacks: list[str] = msgspec.field(default_factory=list)
    environment: EpisodeEnvironment | None = None  # None: a run from before it was recorded


class InstructionCounting(msgspec.Struct, kw_only=True):
    """How an instruction-mode run counted (``--instructions``): what a count depends on
    beyond the code, so counts are compared only with counts made the same way."""

    tool: str = "callgrind"
    valgrind_version: str
    hash_seed: int  # PYTHONHASHSEED of the episode interpreter, fixed so dict and set order repeat
    zeroed_at: str = "PyOS_AfterFork_Child"  # counters start at the episode process's fork


class AttemptRecord(msgspec.Struct, kw_only=True):
    """One invocation that worked on a run directory (the first run, or a resume)."""

    attempt: int
    started_at: str
    finished_at: str | None = None
    episodes_run: int = 0
    status: RunStatus = "running"


class Manifest(msgspec.Struct, kw_only=True):
    """The run descriptor. The first nine fields are TraceCore's performance guide's; ``settings``
    is the one record of what the run was told."""

    generated_at: str
    # The guide's copy of the settings it names for the run descriptor: written from ``settings``
    # here alone (__post_init__, whenever a manifest is made, decoded or replaced), never read
    # back; every reader reads ``settings``.
    episodes: int = 0
    workers: int = 0
    timeout: float = 0.0
    strict_spec: bool = False
    compress: bool = False
    scenario: list[ScenarioRow]
    system_samples: dict[str, Any]
    artifact_set: list[str]
    # additions
    # the settings the run ran with, resolved as it used them (the interpreter and isolation
    # filled in, warm-up 0 where it does not fork): what --resume goes on with
    settings: RunSettings
    agents: dict[str, str]  # each scenario agent as given -> the path episodes load
    stamp: str
    status: RunStatus
    interpreter: Interpreter  # what settings.python turned out to be, as the interpreter itself reports
    host: HostContext
    # the machine id (machine_id()): a fingerprint of the hardware, HARDWARE_FIELDS; Python and
    # TraceCore are the interpreter's fields. Runs published before the id was hardware only
    # mixed the interpreter's versions into these two; machine_id() reads both alike
    machine_class: str
    machine_class_fields: dict[str, Any]
    run_dir: str
    harness_version: str
    attempts: list[AttemptRecord]
    # each scenario agent as given -> the name its artifacts record (a packaged agent keeps
    # the name the user gave; a user's own file is recorded by its absolute path)
    agent_labels: dict[str, str] = msgspec.field(default_factory=dict)
    # what of the warm-up (settings.warmup episodes of each scenario (agent, task) the zygote ran
    # and discarded before forking workers) failed
    warmup_notes: list[str] = msgspec.field(default_factory=list)
    # instruction mode (settings.instructions): how the episodes were counted under Valgrind
    counting: InstructionCounting | None = None
    # FORMAT_VERSION: a manifest made now is of this format; one decoded keeps the version it was
    # published with (0: published before the field existed)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        self.episodes, self.workers, self.timeout = self.settings.episodes, self.settings.workers, self.settings.timeout
        self.strict_spec, self.compress = self.settings.strict_spec, self.settings.compress

    def machine_id(self) -> str:
        """The machine the run ran on: the same id for every run, matrix cell and history
        entry made on it, whatever the Python or TraceCore."""
        fields = {k: v for k, v in self.machine_class_fields.items() if k in HARDWARE_FIELDS}
        return fingerprint(fields) if fields else self.machine_class


class BatchSummary(msgspec.Struct, kw_only=True):
    """The same block TraceCore's ``run_batch`` returns under ``summary``."""

    total: int
    passed: int
    failed: int
    workers: int
    p50_wall_clock_s: float | None
    p95_wall_clock_s: float | None


class RunArtifactStats(msgspec.Struct, kw_only=True):
    root: str
    file_count: int
    total_bytes: int
    avg_bytes: float | None


class SystemSamples(msgspec.Struct, kw_only=True):
    available: bool
    provider: str
    cpu_percent: float | None
    process_rss_bytes: int | None
    system_memory_total_bytes: int | None
    system_memory_available_bytes: int | None
    # additions
    sample_count: int = 0
    interval_s: float | None = None
    cpu_percent_max: float | None = None
    process_rss_bytes_start: int | None = None


class TelemetryVerbosity(msgspec.Struct, kw_only=True):
    artifact_bytes_total: int
    artifact_bytes_avg: float | None
    artifact_bytes_max: int | None
    llm_trace_entries_total: int
    llm_trace_entries_avg: float | None
    prompt_bytes_total: int
    completion_bytes_total: int
    tokens_used_total: int


class Distribution(msgspec.Struct, kw_only=True):
    count: int
    mean: float | None
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    max: float | None


class InstructionFigures(msgspec.Struct, kw_only=True):
    """Instructions per episode of one (agent, task_ref) group, over its successful
    episodes that were counted (instruction mode)."""

    agent: str
    task_ref: str
    count: int
    median: float
    min: int
    max: int
    # the group's episodes run natively (the counted ones' twins, and those run only natively,
    # past --counted-per-row): what the kernel did for them, which the count does not see; None
    # in runs made before twins were run, or where every twin failed
    native_count: int = 0
    native_sys_ms_median: float | None = None
    native_minor_faults_median: float | None = None


class ProcessShare(msgspec.Struct, kw_only=True):
    """What one part of a run's process tree cost, as the kernel accounted it (getrusage,
    wait4): user and system CPU time, and minor page faults (a forked process's copy-on-write
    faults among them), which instruction counts do not see."""

    user_s: float = 0.0
    sys_s: float = 0.0
    minor_faults: int = 0

    @classmethod
    def of(cls, process) -> ProcessShare:
        """From anything with ``cpu_user_s``, ``cpu_sys_s`` and ``minor_faults``."""
        return cls(user_s=process.cpu_user_s, sys_s=process.cpu_sys_s, minor_faults=process.minor_faults or 0)

    def plus(self, other: ProcessShare) -> ProcessShare:
        return ProcessShare(
            user_s=self.user_s + other.user_s, sys_s=self.sys_s + other.sys_s, minor_faults=self.minor_faults + other.minor_faults
        )

    def rounded(self) -> ProcessShare:
        return ProcessShare(user_s=round(self.user_s, 4), sys_s=round(self.sys_s, 4), minor_faults=self.minor_faults)


class ResourcePeaks(msgspec.Struct, kw_only=True):
    """Peaks and totals. ``harness_peak_rss_bytes`` is the kernel's high-water mark of the
    harness process (getrusage); the monitor's samples give its RSS over time."""

    episode_max_rss_bytes: int | None
    episode_cpu_s_total: float
    harness_peak_rss_bytes: int | None
    harness_cpu_s: float
    workers_cpu_s: float
    harness_cpu_ms_per_episode: float | None
    peak_episode_processes: int | None
    # instruction mode: what the workers executed themselves, each from its fork off the zygote
    # to its exit (its episodes not included), summed over the run's workers
    workers_instructions: int | None = None
    workers_uncounted: int | None = None  # workers that wrote no count (killed): not in the sum
    # the run's CPU by part of its process tree: "harness", "zygote", "workers" (their own
    # work, their episodes not included) and "episodes" (the episode processes, summed)
    parts: dict[str, ProcessShare] = msgspec.field(default_factory=dict)


class Integrity(msgspec.Struct, kw_only=True):
    """Whether the run's evidence is what the harness wrote. Episodes run as the same user
    as the harness, so they can reach its files; what they change is found here, set aside
    (in ``set_aside``) and never published as rows."""

    clean: bool = True
    problems: list[str] = msgspec.field(default_factory=list)
    foreign_series_lines: int = 0  # lines in series.jsonl the harness did not write
    missing_series_rows: int = 0  # rows the harness wrote that are gone or altered
    foreign_sample_lines: int = 0
    missing_samples: int = 0
    foreign_artifacts: int = 0  # files in .agent_bench/runs no episode's row accounts for
    missing_artifacts: int = 0  # artifacts the harness placed that are gone
    altered_artifacts: int = 0  # artifacts whose bytes changed after their worker placed them
    contradicted_rows: int = 0  # rows whose success, failure or run disagrees with their artifact in the run
    metrics_disagreements: int = 0  # (task ref, agent) groups where TraceCore's metrics disagree with the rows
    set_aside: str | None = None  # the folder holding what was set aside (run-<stamp>/tainted)


class Summary(msgspec.Struct, kw_only=True):
    """The quick-review artifact. The first nine fields are TraceCore's performance guide's."""

    summary: BatchSummary
    episodes: int
    success_count: int
    failure_count: int
    max_wall_clock_s: float | None
    failure_reasons: dict[str, int]
    run_artifacts: RunArtifactStats
    system_samples: SystemSamples
    telemetry_verbosity: TelemetryVerbosity
    # additions
    stamp: str
    status: RunStatus
    elapsed_s: float
    throughput_eps: float | None
    timed_out_count: int
    wall_clock_s: Distribution
    episode_s: Distribution
    queue_s: Distribution
    resources: ResourcePeaks
    integrity: Integrity = msgspec.field(default_factory=Integrity)
    # instruction mode: per (agent, task_ref), and what the time figures above are worth
    instructions: list[InstructionFigures] = msgspec.field(default_factory=list)
    timing_note: str | None = None
    format_version: int = 0  # FORMAT_VERSION when published; 0: published before it existed


# What an instruction run's time figures are worth (Summary.timing_note): every episode under
# Valgrind, or (--counted-per-row) the counted ones under Valgrind and the rest natively
TIMING_UNDER_VALGRIND = (
    "episodes ran under Valgrind (--instructions): wall-clock and CPU figures are inflated by it, "
    "and comparable only with other instruction runs"
)
TIMING_MIXED = (
    "the counted episodes ran under Valgrind (--instructions) and the others natively (--counted-per-row): "
    "wall-clock and CPU figures mix the two, and compare with nothing; compare time between two native runs"
)


def timing_label(note: str | None) -> str:
    """The few words a time figure of a run with ``note`` is shown with ('' for a native run)."""
    if not note:
        return ""
    return "under Valgrind" if note == TIMING_UNDER_VALGRIND else "Valgrind and native mixed"


# --- the published artifact set's names (run.publish writes them, published reads them) ------

ARTIFACT_KINDS = ("manifest", "summary", "metrics", "series", "samples")


def artifact_path(output_dir: Path, kind: str, stamp: str) -> Path:
    suffix = "zip" if kind == "artifacts" else "json"
    return output_dir / f"perf-{kind}-{stamp}.{suffix}"


# What the machine id is made of: the hardware and the OS, never the interpreter.
HARDWARE_FIELDS = ("cpu_model", "logical_cores", "memory_gib", "os", "machine")


def fingerprint(fields: dict) -> str:
    """A short stable id of a dict of fields (the machine id: of HARDWARE_FIELDS)."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]
