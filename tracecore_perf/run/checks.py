"""A run's input checks that need no episode interpreter: the worker count, the output
directory, the interpreter's path. Standard library only: ``python -m tracecore_perf`` runs
them before it starts any process (the zygote) or imports the harness, so bad input costs
one line and exit 2 and nothing else. ``check_settings`` is the one list of them, whoever
starts the run: once per entry point (the command line, a library call, ``ab``, a matrix).
"""

from __future__ import annotations

import os
import resource
import tempfile
from pathlib import Path

from tracecore_perf import defaults
from tracecore_perf.errors import UsageError

# Per worker the harness holds a socket and the zygote briefly a few more; the rest of the
# descriptor budget is for the harness itself.
FDS_PER_WORKER = 4
FDS_RESERVED = 64
WORKERS_PER_CPU = 16


def worker_limit() -> tuple[int, str]:
    """The most workers this host can hold, and why: a few per CPU (episodes beyond that
    only queue for the CPUs) and what the file-descriptor limit leaves room for."""
    cpus = os.cpu_count() or 1
    by_cpu = WORKERS_PER_CPU * cpus
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return by_cpu, f"{WORKERS_PER_CPU} per CPU on {cpus} CPUs"
    by_fds = max((soft - FDS_RESERVED) // FDS_PER_WORKER, 1)
    if by_fds < by_cpu:
        return by_fds, f"the open-file limit ({soft}, ulimit -n) leaves room for {by_fds}"
    return by_cpu, f"{WORKERS_PER_CPU} per CPU on {cpus} CPUs"


def check_workers(workers: int) -> None:
    limit, why = worker_limit()
    if workers > limit:
        raise UsageError(f"--workers {workers} is more than this host can hold: at most {limit} ({why})")


def check_writable_dir(path: Path) -> None:
    """The output directory must be a writable directory, or creatable as one."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        what = "is a file" if probe == path else f"cannot be created: {probe} is a file"
        raise UsageError(f"output directory {what}: {path}")
    try:
        fd, name = tempfile.mkstemp(dir=probe, prefix=".tracecore-perf-write-test-")
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise UsageError(f"output directory is not writable: {path} ({exc.strerror})") from None


def check_python(python: str) -> None:
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise UsageError(f"--python is not an executable file: {python}")


def check_instructions(instructions: bool, isolation: str, sandbox: bool = False) -> None:
    """``--instructions`` needs valgrind, and episodes forked from the zygote: a spawned
    episode execs a fresh interpreter, which callgrind does not follow; a sandboxed one runs
    in a PID namespace, where callgrind's per-process count files would share names."""
    if not instructions:
        return
    if sandbox:
        raise UsageError(
            "--instructions cannot count sandboxed episodes: callgrind names each count file by process id, "
            "which every PID namespace starts again at 1 (drop --sandbox or --instructions)"
        )
    if isolation == "spawn":
        raise UsageError("--instructions counts episodes forked from the warmed zygote; it cannot be used with --isolation spawn")
    import shutil

    if shutil.which("valgrind") is None:
        raise UsageError("--instructions needs valgrind on PATH (Debian/Ubuntu: apt-get install valgrind)")


def check_memory_limit(limit: int | None) -> None:
    """``--memory-limit``: no more than the host has (a limit above it bounds nothing). The
    default (defaults.MEMORY_LIMIT_BYTES) is taken as it is on any host."""
    from tracecore_perf.units import format_size

    if limit is None or limit == defaults.MEMORY_LIMIT_BYTES:
        return
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return
    if limit > total:
        raise UsageError(f"--memory-limit {format_size(limit)} is more than this host's memory ({format_size(total)})")


def check_counted_per_row(instructions: bool, counted_per_row: int) -> None:
    """``--counted-per-row`` chooses which episodes ``--instructions`` counts: without it
    (any value but the default) it would be recorded for a run that counts nothing."""
    if not instructions and counted_per_row != defaults.COUNTED_PER_ROW:
        raise UsageError(
            "--counted-per-row chooses which episodes --instructions counts; this run counts none "
            "(add --instructions, or drop --counted-per-row)"
        )


def check_settings(settings, output_dir: Path | None) -> None:
    """Every check of a run's settings that needs no episode interpreter, in one place.
    ``settings``: a RunSettings (or anything with its attributes, as the command line's
    parsed flags) with its interpreter and isolation filled in; ``output_dir``: where a new
    run goes (None: a resume, whose run directory exists)."""
    check_workers(settings.workers)
    if output_dir is not None:
        check_writable_dir(output_dir)
    check_python(settings.python)
    check_instructions(settings.instructions, settings.isolation, settings.sandbox)
    check_counted_per_row(settings.instructions, getattr(settings, "counted_per_row", defaults.COUNTED_PER_ROW))
    check_memory_limit(settings.memory_limit)
