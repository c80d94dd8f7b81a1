"""Command line: ``python -m tracecore_perf [run] [flags]`` and the subcommands. The only layer
that parses arguments; the stages (run/, verdicts/, report/) never import from it.

Exit codes: 0 every episode succeeded (or every threshold held), 1 an episode failed (or a
threshold broke), 2 bad input, 3 the run had to stop (disk full, output gone), 4 the run's
evidence was tampered with (published as ``tainted``), 130/143 interrupted by SIGINT/SIGTERM,
141 the reader of our output went away (a closed pipe).

A one-line error may name what an agent or a scenario holds (a path, a task ref, what an
episode raised): each is printed as ``escape.log_line``, control characters shown escaped.
"""

from __future__ import annotations

import difflib
import importlib
import sys

from tracecore_perf.cli.args import COMMANDS, PROG
from tracecore_perf.errors import ExitCode, RunAborted, UsageError
from tracecore_perf.escape import log_line

# The subcommand table: name -> the module whose main(argv) runs it (imported when called).
SUBCOMMANDS = {name: f"tracecore_perf.cli.{name}" for name in COMMANDS}


def subcommand(name: str):
    """The module of subcommand ``name`` (its ``parser()``/``run_parser()`` and ``main(argv)``)."""
    return importlib.import_module(SUBCOMMANDS[name])


def _unknown_command(word: str) -> UsageError:
    close = difflib.get_close_matches(word, list(SUBCOMMANDS), n=1)
    if close:
        return UsageError(f"unknown command {word!r}; did you mean {close[0]!r}?")
    return UsageError(f"unknown command {word!r} (commands: {', '.join(SUBCOMMANDS)}; without one, a run)")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        name = "run"
        if argv and argv[0] in SUBCOMMANDS:
            name = argv.pop(0)
        elif argv and not argv[0].startswith("-"):  # a run takes no positional argument
            raise _unknown_command(argv[0])
        return subcommand(name).main(argv)
    except UsageError as exc:
        print(log_line(f"{PROG}: error: {exc}"), file=sys.stderr)
        return ExitCode.USAGE
    except RunAborted as exc:
        print(log_line(f"{PROG}: run stopped: {exc}"), file=sys.stderr)
        return ExitCode.STOPPED
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM (errors.Terminated) outside the batch
        code = getattr(exc, "exit_code", ExitCode.INTERRUPTED)
        print(f"{PROG}: {'terminated' if code == ExitCode.TERMINATED else 'interrupted'}", file=sys.stderr)
        return code
    except BrokenPipeError:  # whoever read our output (`| head`) has gone: as SIGPIPE would end us
        return ExitCode.READER_GONE
    except Exception as exc:  # a bug of ours: one line for the user, the traceback in a file
        import tempfile
        import traceback

        fd, path = tempfile.mkstemp(prefix="tracecore-perf-crash-", suffix=".txt")
        with open(fd, "w") as fh:
            traceback.print_exc(file=fh)
        print(
            log_line(f"{PROG}: internal error: {type(exc).__name__}: {exc} (traceback in {path}; please report it)"),
            file=sys.stderr,
        )
        return ExitCode.INTERNAL
