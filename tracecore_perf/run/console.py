"""What a person sees: a progress bar while the run goes (only on a terminal) and a short
table at the end. Uses rich, which TraceCore itself already depends on.

rich parses markup in strings: every value from data (agent names, task refs, failure
reasons, integrity problems, paths, the host's names) goes into the table as ``escape.rich``,
a ``Text`` that is shown as it is, its control characters escaped, never parsed."""

from __future__ import annotations

import errno
import os
import sys

from rich.console import Console as _RichConsole
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from tracecore_perf.escape import rich
from tracecore_perf.models import EpisodeRow, Manifest, Summary, timing_label


class Console(_RichConsole):
    """rich's console, but a closed pipe (``| head``, ``| true``) is a ``BrokenPipeError`` for
    the command line to answer (exit 141, no traceback), where rich's own answer is
    ``SystemExit(1)``, an exit code that says an episode failed."""

    def on_broken_pipe(self) -> None:
        self.quiet = True  # nothing more is written through it
        raise BrokenPipeError(errno.EPIPE, "the reader of the output went away")


class ProgressBar:
    """done/total, failures, episodes per second and ETA; silent when stderr is not a TTY."""

    def __init__(self, total: int, already_done: int = 0) -> None:
        self.enabled = sys.stderr.isatty()
        self.failed = 0
        self._progress = None
        if not self.enabled:
            return
        self._progress = Progress(
            TextColumn("[bold]episodes"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[red]{task.fields[failed]} failed"),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._progress.add_task("run", total=total, completed=already_done, failed=0, rate="")

    def __enter__(self) -> ProgressBar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, row: EpisodeRow) -> None:
        if self._progress is None:
            return
        self.failed += not row.success
        task = self._progress.tasks[0]
        speed = task.speed
        self._progress.update(self._task, advance=1, failed=self.failed, rate=f"{speed:.1f} ep/s" if speed else "")


class ProgressLines:
    """Where no bar shows (stderr not a terminal, ``--no-progress``) and episodes are slow (under
    Valgrind an instruction run takes minutes): one log line, ``run.progress``, at most every
    ``every`` seconds, checked as each row arrives (no timer of its own)."""

    def __init__(self, total: int, already_done: int = 0, every: float = 15.0, clock=None) -> None:
        import time

        import structlog

        self.total, self.done, self.failed = total, already_done, 0
        self.every = every
        self._clock = clock or time.monotonic
        self._last = self._clock()
        self._log = structlog.get_logger("tracecore_perf.run.progress")

    def advance(self, row: EpisodeRow) -> None:
        self.done += 1
        self.failed += not row.success
        now = self._clock()
        if now - self._last >= self.every or self.done == self.total:
            self._last = now
            self._log.info("run.progress", done=self.done, total=self.total, failed=self.failed)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def machine_line(manifest: Manifest) -> str:
    """Where a run ran: the machine id (the same for every run on this hardware), the
    hardware it stands for, and the runtime beside it."""
    host, interpreter = manifest.host, manifest.interpreter
    return (
        f"{manifest.machine_id()} ({host.cpu_model}, {host.logical_cores} cores, "
        f"{round(host.memory_total_bytes / 2**30)} GiB); Python {interpreter.python_version}, "
        f"TraceCore {interpreter.tracecore_version}"
    )


def print_summary(summary: Summary, manifest: Manifest, artifacts: dict[str, str], run_dir: str) -> None:
    console = Console()
    table = Table(title=f"tracecore-perf run {summary.stamp} ({summary.status})", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row(
        "episodes",
        f"{summary.episodes} ({summary.success_count} ok, {summary.failure_count} failed, {summary.timed_out_count} timed out)",
    )
    table.add_row(
        "throughput",
        "-" if summary.throughput_eps is None else f"{summary.throughput_eps:.1f} episodes/s over {summary.elapsed_s:.2f} s",
    )
    wall = summary.wall_clock_s
    label = timing_label(summary.timing_note)
    inflated = f" [yellow]({label})[/]" if label else ""
    table.add_row(f"latency (wall){inflated}", f"p50 {_seconds(wall.p50)}  p95 {_seconds(wall.p95)}  max {_seconds(wall.max)}")
    table.add_row(
        f"episode (TraceCore){inflated}", f"p50 {_seconds(summary.episode_s.p50)}  p95 {_seconds(summary.episode_s.p95)}"
    )
    for row in summary.instructions:
        table.add_row(
            "instructions (M)",
            rich(
                f"{os.path.basename(row.agent)} on {row.task_ref}: median {row.median / 1e6:,.3f} "
                f"[{row.min / 1e6:,.3f} - {row.max / 1e6:,.3f}], n={row.count}"
            ),
        )
    table.add_row(
        "run artifacts",
        f"{summary.run_artifacts.file_count} files, {summary.run_artifacts.total_bytes:,} bytes on disk; "
        f"{summary.telemetry_verbosity.artifact_bytes_total:,} bytes serialized",
    )
    for reason, count in list(summary.failure_reasons.items())[:5]:
        table.add_row("failure", rich(f"{count} × {reason}"))
    for problem in summary.integrity.problems:
        table.add_row("[red]TAINTED", rich(problem))
    table.add_row("machine", rich(machine_line(manifest)))
    table.add_row("run directory", rich(run_dir))
    for kind, path in artifacts.items():
        table.add_row(Text(kind), rich(path))
    console.print(table)
