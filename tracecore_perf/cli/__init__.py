"""Command line: ``python -m tracecore_perf [run] [flags]`` and the subcommands. The only layer
that parses arguments; the stages (run/, verdicts/, report/) never import from it.

Exit codes: 0 every episode succeeded (or every threshold held), 1 an episode failed (or a
threshold broke), 2 bad input, 3 the run had to stop (disk full, output gone), 4 the run's
evidence was tampered with (published as ``tainted``), 130/143 interrupted by SIGINT/SIGTERM (SIGHUP as SIGTERM),
141 the reader of our output went away (a closed pipe).

A one-line error may name what an agent or a scenario holds (a path, a task ref, what an
episode raised): each is printed as ``escape.log_line``, control characters shown escaped.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import os
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
        _tell(log_line(f"{PROG}: error: {exc}"))
        return ExitCode.USAGE
    except RunAborted as exc:
        _tell(log_line(f"{PROG}: run stopped: {exc}"))
        return ExitCode.STOPPED
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (errors.Terminated) outside the batch
        code = getattr(exc, "exit_code", ExitCode.INTERRUPTED)
        _tell(f"{PROG}: {'terminated' if code == ExitCode.TERMINATED else 'interrupted'}")
        return code
    except BrokenPipeError:  # whoever read our output (`| head`) has gone: as SIGPIPE would end us
        _reader_gone()
        return ExitCode.READER_GONE
    except Exception as exc:  # a bug of ours: one line for the user, the traceback in a file
        import tempfile
        import traceback

        fd, path = tempfile.mkstemp(prefix="tracecore-perf-crash-", suffix=".txt")
        with open(fd, "w") as fh:
            traceback.print_exc(file=fh)
        _tell(log_line(f"{PROG}: internal error: {type(exc).__name__}: {exc} (traceback in {path}; please report it)"))
        return ExitCode.INTERNAL


def _tell(line: str) -> None:
    """The command's last line, on stderr; a stderr that is gone (a closed pipe, a terminal
    that hung up) changes nothing of the exit code."""
    with contextlib.suppress(OSError, ValueError):
        print(line, file=sys.stderr)


def _reader_gone() -> None:
    """stdout's reader has gone: what is still buffered for it goes nowhere, so the
    interpreter's last flush neither fails nor prints a traceback."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, stream.fileno())
                os.close(devnull)
