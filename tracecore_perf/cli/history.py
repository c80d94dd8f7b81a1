"""``tracecore-perf history add|show|check|report|accept``: performance history across runs, kept in
an SQLite file (``--db``), with change points (ruptures places a split, scipy judges it) per
(agent, task_ref)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import msgspec

from tracecore_perf import defaults
from tracecore_perf.cli.args import (
    PROG,
    RUN_REF,
    Parser,
    add_search_dir,
    alpha,
    check_junit_target,
    check_output_path,
    fraction,
    positive_int,
)
from tracecore_perf.errors import UsageError
from tracecore_perf.escape import json as escape_json

SETTINGS = defaults.HISTORY


def _db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", type=Path, metavar="PATH", default=Path(defaults.HISTORY_DB), help="the history database")


def _analysis(p: argparse.ArgumentParser, metric_help: str) -> None:
    from tracecore_perf.history.models import METRICS

    _db(p)
    p.add_argument("--metric", action="append", metavar="NAME", help=f"{metric_help} ({', '.join(METRICS)}); repeatable")
    p.add_argument(
        "--min-change",
        type=fraction,
        help="a change point whose segment medians differ by less than this fraction is dropped (the host's run-to-run "
        f"noise; default: {SETTINGS['min_change']:g}, and {METRICS['instructions'].min_change:g} for instructions)",
    )
    p.add_argument("--pvalue", type=alpha, default=SETTINGS["pvalue"], help="the p-value a split must reach to be a change point")
    p.add_argument(
        "--permutations",
        type=_permutations,
        default=SETTINGS["permutations"],
        help=f"random orders per permutation test, seeded (1 to {MAX_PERMUTATIONS})",
    )
    p.add_argument("--order", choices=["time", "label"], default="time", help="order of the runs in a series")
    p.add_argument("--mix-machines", action="store_true", help="one series across machines (default: one per machine id)")


MAX_PERMUTATIONS = 10_000  # each test is a loop of this many; more only burns CPU
MAX_LABEL = 200  # a commit, a tag, a release name: printed in tables, charts and the page


def _permutations(text: str) -> int:
    value = positive_int(text)
    if value > MAX_PERMUTATIONS:
        raise argparse.ArgumentTypeError(f"at most {MAX_PERMUTATIONS}, got {value}")
    return value


def _line(text: str) -> str:
    """One printable line of at most MAX_LABEL characters (a label, a reason)."""
    if len(text) > MAX_LABEL:
        raise argparse.ArgumentTypeError(f"at most {MAX_LABEL} characters, got {len(text)}")
    if not text.isprintable():  # newlines, tabs, terminal escapes: labels are printed as they are
        raise argparse.ArgumentTypeError(f"only printable characters (no newlines or control characters): {text!r}")
    return text


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog=f"{PROG} history",
        description="Performance history across runs: a store of published runs, change points per (agent, task_ref), "
        "a gate and a dashboard page.",
    )
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = sub.add_parser("add", help="add published runs to the history (a run already there is left as it is)")
    add.add_argument("runs", nargs="+", metavar="RUN", help=f"a run: {RUN_REF}")
    add.add_argument(
        "--label",
        type=_line,
        help=f"a label for the runs, such as a commit or a release; one line of at most {MAX_LABEL} characters",
    )
    _db(add)
    add_search_dir(add)

    show = sub.add_parser("show", help="the series over runs and their change points")
    _analysis(show, "metrics shown, default all")
    show.add_argument("--format", choices=["text", "json"], default="text", help="output format")

    from tracecore_perf.export import FORMATS

    gate = sub.add_parser("check", help="does the newest run sit on the slower side of a change point?")
    _analysis(gate, "metrics gated, default instructions when the newest run counted them, else cpu_s")
    gate.add_argument("--fail-on", choices=["regression", "never"], default="never", help="exit 1 on a regression")
    gate.add_argument("--format", choices=sorted(FORMATS), default="text", help="output format")
    gate.add_argument(
        "--junit-file",
        type=Path,
        metavar="PATH",
        help="where --format junit writes: a new file or an earlier JUnit report, never a run's files, the history "
        "database, a link or a device (default: history-check.junit.xml beside the --db file)",
    )

    page = sub.add_parser("report", help="one self-contained HTML page: a chart per (agent, task_ref), change points marked")
    _analysis(
        page,
        "metrics charted (change points are looked for, and listed, in every metric), default cpu_s, wall_clock_s and "
        "the run-wide ones (instructions too when the newest run counted them)",
    )
    page.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        required=True,
        help="the HTML file written: a new file or an earlier history page, never a run's files, a link or a device",
    )

    accept = sub.add_parser(
        "accept",
        help="accept the change points at or before a run (an intended slowdown): listed as accepted, never a regression",
    )
    accept.add_argument("run", metavar="RUN", help="a run in the history: its stamp, or its label (such as a commit)")
    accept.add_argument(
        "--reason",
        type=_line,
        help=f"why, shown with every change point it accepts; one line of at most {MAX_LABEL} characters",
    )
    _db(accept)
    return p


def _settings(args: argparse.Namespace):
    from tracecore_perf.history.models import Settings

    return Settings(
        pvalue=args.pvalue,
        permutations=args.permutations,
        min_change=SETTINGS["min_change"] if args.min_change is None else args.min_change,
        min_change_given=args.min_change is not None,
        seed=SETTINGS["seed"],
        mix_machines=args.mix_machines,
        order=args.order,
    )


def _load(args: argparse.Namespace, metrics: list[str] | None, counted_default: list[str] | None = None):
    """The history with its change points in ``metrics`` (None: every metric).
    ``counted_default``: the metrics instead when the newest run counted instructions."""
    from tracecore_perf.history import changes
    from tracecore_perf.history.store import open_store

    metrics = changes.check_metrics(metrics)
    with open_store(args.db, write=False) as store:
        runs, groups, accepted = store.runs(), store.groups(), store.acceptances()
    newest = changes.ordered(runs, args.order)[-1] if runs else None
    if counted_default and newest is not None and newest.instructions:
        metrics = counted_default
    return changes.history(str(args.db), runs, groups, metrics, _settings(args), accepted)


def add(args: argparse.Namespace) -> int:
    from tracecore_perf.history.store import figures_of, open_store
    from tracecore_perf.published import locate

    check_output_path("--db", args.db, "history")
    entries = [figures_of(locate(ref, args.search_dir), args.label) for ref in args.runs]  # all read before any write
    with open_store(args.db, write=True) as store:
        added = store.add(entries)
    for (record, _), new in zip(entries, added, strict=True):
        state = "added" if new else "already in the history, unchanged"
        print(f"{PROG} history: {record.stamp} {state} ({args.db})")
    return 0


def show(args: argparse.Namespace) -> int:
    from tracecore_perf.history.export import render_text

    found = _load(args, args.metric)
    if args.format == "json":
        sys.stdout.write(escape_json(msgspec.json.format(msgspec.json.encode(found), indent=2).decode()) + "\n")
    else:
        sys.stdout.write(render_text(found))
    return 0


def check(args: argparse.Namespace) -> int:
    from tracecore_perf.cli.output import emit
    from tracecore_perf.history import changes

    check_junit_target(args.format, args.junit_file)
    # the gate: cpu_s (instructions when the newest run counted them), or the metrics asked for
    verdict = changes.check(_load(args, args.metric or ["cpu_s"], counted_default=None if args.metric else ["instructions"]))
    emit(args.format, verdict, args.junit_file or args.db.parent / "history-check.junit.xml")
    return 0 if verdict.ok or args.fail_on == "never" else 1


def report(args: argparse.Namespace) -> int:
    from tracecore_perf.history import changes
    from tracecore_perf.history.report import DEFAULT_METRICS, write_history_report

    target = check_output_path("--output", args.output, "page")
    charted = changes.check_metrics(args.metric) if args.metric else None
    found = _load(args, None)  # every metric: the page lists every change point the store holds
    newest_counted = bool(found.runs) and found.runs[-1].instructions
    charted = charted or (["instructions", *DEFAULT_METRICS] if newest_counted else DEFAULT_METRICS)
    write_history_report(found, target, charted)
    print(f"{PROG} history report: {target}")
    return 0


def accept(args: argparse.Namespace) -> int:
    from tracecore_perf.history.store import open_store

    check_output_path("--db", args.db, "history")
    if not args.db.exists():
        raise UsageError(f"no history database at {args.db} (add runs with `history add RUN... --db {args.db}`)")
    with open_store(args.db, write=False, older_ok=True) as store:  # the run is found before anything is written
        stamp = store.resolve(args.run)
    with open_store(args.db, write=True) as store:  # an older schema is migrated here, as `add` does
        new = store.accept(stamp, args.reason)
        (label,) = [label for s, label in store.refs() if s == stamp]
    named = f"{stamp} [{label}]" if label else stamp
    state = "accepted" if new else "accepted again (its reason replaced)"
    print(f"{PROG} history: {named} {state}: its change points and earlier ones no longer fail `history check` ({args.db})")
    return 0


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    return {"add": add, "show": show, "check": check, "report": report, "accept": accept}[args.action](args)
