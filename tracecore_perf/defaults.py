"""The one table of defaults: every stage and the command line read them from here (a leaf
module: it imports nothing of the package)."""

from __future__ import annotations

# where runs are written and stamps are looked up
OUTPUT_DIR = "deliverables/perf"
AB_OUTPUT_DIR = f"{OUTPUT_DIR}/ab"

# a run (TraceCore's performance guide's everyday slice)
EPISODES = 24
WORKERS = 4
TIMEOUT_S = 180.0
# the shortest --timeout: the harness times an episode on its event loop (epoll waits in whole
# milliseconds) and the kill reaches the episode through its worker's socket, a millisecond or
# so; a limit near those would measure them, not the episode (docs/running.md)
MIN_TIMEOUT_S = 0.01

# input files (--scenario, a matrix file): read only when regular files of at most this many
# bytes, and a scenario of at most this many rows. Measured (docs/running.md, "Scenarios"): 10^4
# rows load in 0.07 s (JSON) or 0.4 s (TOML), ten times the rows a 1000-episode release run can
# use (the plan cycles the rows: episode i runs row i % rows); the worst 4 MiB a parser can be
# given (a million empty tables) takes 0.4 s as JSON, 4 s as TOML.
MAX_INPUT_BYTES = 4 * 1024**2
MAX_SCENARIO_ROWS = 10_000
SAMPLE_INTERVAL_S = 0.5
KEEP_RUNS = "all"
OUTPUT_CAP_BYTES = 1024 * 1024  # each episode's stdout+stderr kept
WARMUP = 1  # episodes of each scenario (agent, task) the zygote runs and discards before forking workers
# each episode process's data-segment limit (RLIMIT_DATA): a TraceCore toy episode takes ~40 MB,
# an LLM-driven one a few hundred; 4 GiB is room for any real agent, and with the default 4
# workers leaves a 24 GiB host its memory. Episodes are also the kernel OOM killer's first pick
MEMORY_LIMIT_BYTES = 4 * 1024**3
MIN_MEMORY_LIMIT_BYTES = 64 * 1024**2  # an interpreter running TraceCore cannot start in less
# --instructions: episodes of each scenario row counted under Valgrind (its first ones; the rest
# run natively). Counts repeat to +-0.02%, so two per row give the figure, paired by seed with a
# baseline's, and leave compare a spread to see (one would not); 0 counts every episode, as runs
# did before the setting (docs/verdicts.md, "Counted episodes")
COUNTED_PER_ROW = 2

# the oldest TraceCore release episodes run under (--python, ab, matrix cells): the first with
# the runner, the toy agent and the everyday scenario's tasks (tests/test_releases.py)
OLDEST_TRACECORE = (0, 9, 5)

# ab: the same episodes under two interpreters
AB_EPISODES = 48
AB_WORKERS = 2
AB_ROUNDS = 4

# continuous: two revisions of a TraceCore checkout, built alike, the slice counted on both
CONTINUOUS_OUTPUT_DIR = f"{OUTPUT_DIR}/continuous"
CONTINUOUS_ROUNDS = 2  # ABBA: base, head, head, base

# compare (and ab): cpu_s, measured with scripts/validity_bench.py on the shared 2-core host
# class, moves far less with other load than wall-clock time does
COMPARE = {"metric": "cpu_s", "alpha": 0.01, "noise": 0.05, "margin": 0.10, "drift": 0.05}
# compare on instruction counts (the default when both runs were made with --instructions):
# two runs of the same code agree per row to ~0.01% whatever the host does, so a 0.2% noise
# floor is 20 times the noise, and a 1% margin fails a CI build on a change a third the size
# of a TraceCore release's (measured: docs/verdicts.md, "Instruction counts"); no between-run drift
COMPARE_INSTRUCTIONS = {"metric": "instructions", "alpha": 0.01, "noise": 0.002, "margin": 0.01, "drift": 0.0}
# ... and beside the counts, the kernel's work for the same episodes, from their native twins
# (an instruction run runs each counted episode again natively). Minor faults are the kernel's
# count: a row's median repeats to ~1% between runs (docs/verdicts.md, "The kernel's share"),
# so they gate past 5%. System time is a clock on a shared host: flagged past 25%, never
# failing a build alone.
COMPARE_KERNEL = {
    "native_minor_faults": {"alpha": 0.01, "noise": 0.02, "margin": 0.05, "drift": 0.01, "gates": True},
    "native_sys_s": {"alpha": 0.01, "noise": 0.10, "margin": 0.25, "drift": 0.05, "gates": False},
}

# history: the store of runs over time, and change points (ruptures places a split, scipy judges it)
HISTORY_DB = f"{OUTPUT_DIR}/history.sqlite"
HISTORY = {"pvalue": 0.05, "permutations": 500, "min_change": 0.10, "seed": 1234}
