"""``tracecore-perf explain BASE CURRENT``: for each scenario row whose instruction count moved
past the noise floor between two ``--instructions`` runs, the functions that account for it
(Python functions by bytecodes, the interpreter's C functions by instructions), from the
profiles each run kept; with ``--svg-dir``, a differential flame graph per row."""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

from tracecore_perf.cli.args import PROG, RUN_REF, Parser, add_search_dir, check_output_path, positive_int
from tracecore_perf.published import locate


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog=f"{PROG} explain",
        description="Which functions account for each row whose instruction count moved between two instruction runs.",
    )
    p.add_argument("base", help=f"the base run (an --instructions run): {RUN_REF}")
    p.add_argument("current", help=f"the current run (an --instructions run): {RUN_REF}")
    add_search_dir(p)
    p.add_argument("--top", type=positive_int, default=8, metavar="N", help="functions listed per view and row")
    p.add_argument("--all", action="store_true", help="every profiled row, not only those whose count moved")
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text", help="what is printed")
    p.add_argument(
        "--allow-tainted",
        action="store_true",
        help="explain a tainted run (its evidence tampered with) anyway, with a warning; refused otherwise (exit 2)",
    )
    p.add_argument(
        "--svg-dir",
        type=Path,
        metavar="DIR",
        help="write each explained row's differential flame graph (Python stacks) there as flame-<agent>-<task>.svg: "
        "an existing folder, not a link; a file already there is never replaced (default: none written)",
    )
    return p


def main(argv: list[str]) -> int:
    import msgspec

    from tracecore_perf.errors import UsageError
    from tracecore_perf.explain import explain_runs
    from tracecore_perf.explain.render import render_markdown, render_text

    args = parser().parse_args(argv)
    if args.svg_dir is not None:
        check_output_path("--svg-dir", args.svg_dir, "folder")
    base = locate(args.base, args.search_dir)
    current = locate(args.current, args.search_dir)
    from tracecore_perf.escape import log_line
    from tracecore_perf.verdicts.compare import tainted_reason

    for run in (base, current):
        if why := tainted_reason(run):
            if not args.allow_tainted:
                raise UsageError(f"run {run.stamp} is tainted, {why}: explain it with --allow-tainted")
            print(log_line(f"{PROG}: WARNING: TAINTED RUN {run.stamp}: {why}"), file=sys.stderr)
        if not any(row.profile for row in run.series()):
            raise UsageError(
                f"run {run.stamp} kept no profiles: a native run, an --instructions run from before profiles were kept, "
                "or one whose profiles could not be written (its harness.log says why: episode.profile_not_kept)"
            )
    explanation = explain_runs(base, current, top=args.top)
    if args.svg_dir is not None:
        written = write_flame_graphs(explanation, base, current, args.svg_dir, all_rows=args.all)
        for path in written:
            print(f"{PROG} explain: {path}", file=sys.stderr)
    if args.format == "json":
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(explanation)).decode() + "\n")
    elif args.format == "markdown":
        sys.stdout.write(render_markdown(explanation) or "No scenario row's count moved past the noise floor.\n")
    else:
        sys.stdout.write(render_text(explanation, all_rows=args.all))
    return 0


def write_flame_graphs(explanation, base, current, folder: Path, *, all_rows: bool = False) -> list[Path]:
    """One differential flame graph per explained row with both sides' Python stacks; a file
    already at a name is left as it is (UsageError, before any is written)."""
    from tracecore_perf.errors import UsageError
    from tracecore_perf.explain import python_stacks
    from tracecore_perf.explain.flame import differential_svg
    from tracecore_perf.files import write_atomic

    rows = [row for row in (explanation.rows if all_rows else explanation.changed) if len(row.python_profiles) == 2]
    targets = [(row, folder / flame_name(row.agent, row.task_ref)) for row in rows]
    for _, path in targets:
        if path.exists() or path.is_symlink():
            raise UsageError(f"--svg-dir: {path} exists; explain never replaces a file (name another folder)")
    written = []
    for row, path in targets:
        stacks = python_stacks(base, current, row.agent, row.task_ref)
        if stacks is None:
            continue
        title = f"{row.agent} on {row.task_ref}: {base.stamp} -> {current.stamp}"
        write_atomic(path, differential_svg(*stacks, title).encode())
        written.append(path)
    return written


def flame_name(agent: str, task_ref: str) -> str:
    """``flame-<agent file>-<task>-<8 hex digits>.svg``: readable, and one name per row (two
    agents of one file name in different folders are two rows)."""
    digest = hashlib.sha256(f"{agent}\0{task_ref}".encode()).hexdigest()[:8]
    return f"flame-{_slug(agent)}-{_slug(task_ref)}-{digest}.svg"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.@-]+", "_", Path(text).name)[:40]
