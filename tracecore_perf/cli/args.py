"""What every subcommand's parser shares: the parser class (a usage error is one line), the
help formatter (every flag shows its default), argument types, shared flags, and resolving
a run named on the command line. A leaf of the ``cli`` layer: it imports no stage at module
level."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tracecore_perf import defaults
from tracecore_perf.errors import UsageError

PROG = "tracecore-perf"

# The subcommands, one line each, in the order ``--help`` lists them.
COMMANDS = {
    "run": "run episodes, each in its own process, and publish the evidence (the default command)",
    "check": "check a published run against the thresholds and the trend checks",
    "compare": "compare a run with a baseline, per group (agent, task), with statistics",
    "ab": "run the same episodes under two interpreters, interleaved, then compare them",
    "continuous": "build two revisions of a TraceCore checkout alike, count their episodes side by side, and compare",
    "bisect": "find the first commit between two TraceCore revisions whose instruction counts regressed past the margin",
    "report": "write a published run's charts and a self-contained HTML report",
    "matrix": "run a matrix of runs (cells) from a TOML file, here one after another or one per host on Ray",
    "history": "performance history across runs: add runs, show series and change points, check, report",
    "export": "write a published run's figures for Bencher (BMF) or github-action-benchmark",
    "explain": "which functions account for each row whose instruction count moved between two instruction runs",
}

RUN_REF = "stamp (looked up in --search-dir), run directory, perf-*-<stamp>.json, or a folder holding one published run"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every flag's help ends with its default, unless the help already names it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or "default" in text or action.default is argparse.SUPPRESS:
            return text
        if isinstance(action, argparse._StoreTrueAction):  # noqa: SLF001 - argparse has no public name for it
            return f"{text} (default: off)"
        if action.default is None or action.default == []:
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (raised, so ``main()`` prints it once), every
    flag shows its default, and a flag is only ever its whole name: no abbreviations
    (``--episode`` is not taken as ``--episodes``), and an unknown one is named with the
    closest known one."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        kwargs.setdefault("allow_abbrev", False)  # the subparsers of add_subparsers are this class too
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        parsed, rest = self.parse_known_args(args, namespace)
        if rest:
            flag = next((word for word in rest if word.startswith("-") and word != "-"), None)
            if flag is None:
                self.error(f"unrecognized arguments: {' '.join(rest)}")
            raise unknown_option(flag.split("=", 1)[0], self._known_options(parsed))
        return parsed

    def _known_options(self, parsed: argparse.Namespace) -> list[str]:
        """This parser's option strings and those of the subcommand chosen (``history add``)."""
        known = []
        for action in self._actions:
            known += [o for o in action.option_strings if o.startswith("--")]
            if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001 - argparse has no public name for it
                chosen = action.choices.get(getattr(parsed, action.dest, None) or "")
                if isinstance(chosen, Parser):
                    known += chosen._known_options(parsed)  # noqa: SLF001 - the same class
        return known

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        parsed, rest = super().parse_known_args(args, namespace)
        for action in self._actions:
            value = getattr(parsed, action.dest, None)
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, (str, Path)):
                    check_path_argument(_argument_name(action), item, path_like=_path_like(action, item))
        return parsed, rest

    def _print_message(self, message: str, file=None) -> None:  # noqa: ANN001 - argparse's hook
        # argparse swallows a failed write of --help or --version: a closed stdout (`| head`)
        # is the command line's BrokenPipeError (exit 141), as for any other output
        if message:
            out = file or sys.stdout
            out.write(message)
            out.flush()


def unknown_option(flag: str, known: list[str]) -> UsageError:
    """The one-line error of a flag no parser knows, naming the closest known flag if any."""
    import difflib

    close = difflib.get_close_matches(flag, known, n=1)
    if close:
        return UsageError(f"unknown option {flag}; did you mean {close[0]}?")
    return UsageError(f"unknown option {flag} (--help lists the options)")


# --- path arguments ----------------------------------------------------------------------

NAME_MAX = 255  # bytes in one path component (Linux, every common file system)
PATH_MAX = 4095  # bytes in a whole path the kernel takes
# Arguments that name a file or folder though argparse keeps them as text (a run: a stamp or a path).
PATH_METAVARS = frozenset({"FILE", "PATH", "DIR", "REF", "RUN", "RUN_DIR", "MATRIX_DIR", "PYTHON", "BASE", "HEAD"})
PATH_DESTS = frozenset({"run", "runs", "baseline", "current"})


def _argument_name(action: argparse.Action) -> str:
    return action.option_strings[-1] if action.option_strings else (action.metavar or action.dest).upper()


def _path_like(action: argparse.Action, value: object) -> bool:
    return isinstance(value, Path) or action.metavar in PATH_METAVARS or action.dest in PATH_DESTS


def check_path_argument(name: str, value: str | Path, *, path_like: bool = True) -> None:
    """Every argument is text tracecore-perf can record (published files are JSON, the history
    SQLite: UTF-8 only), and a path one the kernel can take: no component over NAME_MAX bytes,
    the whole within PATH_MAX. Bytes that are not UTF-8 (``os.fsencode``'s surrogateescape)
    are refused, not recorded mangled: UsageError naming the argument."""
    text = str(value)
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:
        shown = text.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
        raise UsageError(
            f"{name}: not valid UTF-8: {shown} (published runs and the history record paths and names as UTF-8 text; rename it)"
        ) from None
    if not path_like:
        return
    longest = max(raw.split(b"/"), key=len)
    if len(longest) > NAME_MAX:
        raise UsageError(
            f"{name}: a path component of {len(longest)} bytes, more than a file name may have ({NAME_MAX}): "
            f"{longest[:40].decode('utf-8', 'replace')}..."
        )
    if len(raw) > PATH_MAX:
        raise UsageError(f"{name}: a path of {len(raw)} bytes, more than the system takes ({PATH_MAX})")


# --- argument types --------------------------------------------------------------------


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def seconds_at_least(minimum: float):
    """A seconds flag's type: a number of seconds, at least ``minimum``."""

    def seconds(text: str) -> float:
        value = positive_float(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g} seconds, got {text}")
        return value

    return seconds


def fraction(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (or 0% and 100%), got {text}")
    return value


def alpha(text: str) -> float:
    value = fraction(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be above 0")
    return value


def size_at_least(minimum: int):
    """A size flag's type: bytes or a binary unit (units.parse_size), at least ``minimum``."""
    from tracecore_perf.units import format_size, parse_size

    def size(text: str) -> int:
        try:
            value = parse_size(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is less than the {format_size(minimum)} an episode needs")
        return value

    return size


# --- shared flags ----------------------------------------------------------------------


def add_run_settings(parser, *, skip: tuple[str, ...] = ()) -> list[str]:
    """One flag per :class:`~tracecore_perf.settings.RunSettings` field (but ``skip``), its
    type and bound, default and help taken from the struct: ``run`` and ``ab`` both call
    this, so a setting exists in both as soon as it exists in the struct. Returns the
    flags' destinations, in the struct's order."""
    import msgspec.inspect as inspect

    from tracecore_perf.settings import SIZES, described

    dests = []
    for name, kind, default, text in described():
        if name in skip:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(kind, inspect.BoolType):
            dests.append(parser.add_argument(flag, action="store_true", help=text).dest)
            continue
        if isinstance(kind, inspect.UnionType):  # X | None: None means "decided at run time"
            kind = next(t for t in kind.types if not isinstance(t, inspect.NoneType))
        kwargs: dict = {"help": text, "default": default}
        if isinstance(kind, inspect.LiteralType):
            kwargs["choices"] = list(kind.values)
        elif name in SIZES:
            kwargs.update(type=size_at_least(kind.ge or 1), metavar="SIZE")
        elif isinstance(kind, inspect.IntType):
            kwargs.update(type=positive_int if kind.ge == 1 else non_negative_int, metavar="N")
        elif isinstance(kind, inspect.FloatType):
            kwargs.update(type=seconds_at_least(kind.ge) if kind.ge else positive_float, metavar="S")
        else:
            kwargs["metavar"] = "PATH"
        dests.append(parser.add_argument(flag, **kwargs).dest)
    return dests


def run_settings_from(args: argparse.Namespace, **resolved):
    """The :class:`RunSettings` of parsed flags (``resolved`` overrides: the interpreter and
    isolation decided at run time, a side of ``ab``)."""
    from tracecore_perf.settings import NAMES, RunSettings

    values = {name: getattr(args, name) for name in NAMES if hasattr(args, name)}
    return RunSettings(**{**values, **resolved})


def add_search_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--search-dir", type=Path, metavar="DIR", default=Path(defaults.OUTPUT_DIR), help="where stamps are looked up"
    )


def add_thresholds(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--thresholds",
        type=Path,
        metavar="FILE",
        help="TOML file of threshold overrides (default: [tool.tracecore_perf.thresholds] of ./pyproject.toml, "
        "else TraceCore's performance guide's)",
    )


def add_output_format(parser: argparse.ArgumentParser, junit_default: str) -> None:
    from tracecore_perf.export import FORMATS

    parser.add_argument("--format", choices=sorted(FORMATS), default="text", help="output format")
    parser.add_argument(
        "--junit-file",
        type=Path,
        metavar="PATH",
        help=f"where --format junit writes: a new file or an earlier JUnit report, never a run's files, the history "
        f"database, a link or a device (default: {junit_default})",
    )


def add_comparison_flags(parser: argparse.ArgumentParser, env_flag: bool = True) -> None:
    """The flags ``compare``, ``ab`` and ``continuous`` share (``continuous`` builds both
    sides alike: no ``--allow-env-difference``)."""
    from tracecore_perf.verdicts.compare import METRICS

    time, counts = defaults.COMPARE, defaults.COMPARE_INSTRUCTIONS

    def default(key: str) -> str:
        return f"(default: {time[key]:g}; {counts[key]:g} for instructions)"

    parser.add_argument(
        "--metric",
        choices=sorted(METRICS),
        help=f"what is compared per episode (default: instructions when both runs were made with --instructions, "
        f"else {time['metric']})",
    )
    parser.add_argument("--alpha", type=alpha, help=f"significance level after adjustment {default('alpha')}")
    parser.add_argument("--noise", type=fraction, help=f"changes smaller than this fraction are no change {default('noise')}")
    parser.add_argument("--margin", type=fraction, help=f"slower by more than this fraction is a regression {default('margin')}")
    parser.add_argument(
        "--drift",
        type=fraction,
        help="floor of the between-run drift: the relative standard deviation of a run's median from one run to the "
        f"next on this host class (a run that drifts more within itself gets more) {default('drift')}",
    )
    parser.add_argument("--fail-on", choices=["regression", "never"], default="never", help="exit 1 on a regression")
    if env_flag:
        parser.add_argument(
            "--allow-env-difference",
            action="store_true",
            help="give an instruction verdict between episode interpreters installed differently (other distributions "
            "or versions, editable on one side, TraceCore from another kind of source), with a warning; refused "
            "otherwise (exit 2): the count would measure the install",
        )
    add_output_format(parser, "perf-compare-<stamp>.junit.xml next to the current run")


def check_output_path(flag: str, path: str | Path, kind: str) -> Path:
    """An output path a user named, held to the one guard of every sink
    (``files.output_refusal``) before any work: returned as a Path, or UsageError naming the
    flag, the path and why (exit 2, nothing written)."""
    from tracecore_perf.files import output_refusal

    why = output_refusal(path, kind)  # type: ignore[arg-type]
    if why is None:
        return Path(path)
    if why.startswith("must"):
        raise UsageError(f"{flag} {why}: {path}")
    raise UsageError(f"{flag} {path} {why}")


def check_junit_target(fmt: str, path: Path | None) -> None:
    """``--junit-file``, when ``--format junit`` writes it; and ``$GITHUB_STEP_SUMMARY``,
    when ``--format github`` appends to it."""
    import os

    if path is not None and fmt != "junit":  # a file the user asked for that would never be written
        raise UsageError(f"--junit-file is written by --format junit, not --format {fmt}: add --format junit")
    if fmt == "junit" and path is not None:
        check_output_path("--junit-file", path, "junit")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if fmt == "github" and summary:
        check_output_path("GITHUB_STEP_SUMMARY", summary, "append")


def settings_from(args: argparse.Namespace):
    """``compare``'s settings from the flags of :func:`add_comparison_flags`, its output
    paths checked."""
    from tracecore_perf.verdicts.compare import Settings

    check_junit_target(args.format, args.junit_file)
    return Settings(metric=args.metric, alpha=args.alpha, noise=args.noise, margin=args.margin, drift=args.drift)


# --- naming a run ----------------------------------------------------------------------
