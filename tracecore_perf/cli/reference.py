"""The CLI reference (``docs/cli.md``), generated from the parsers themselves: every command's
``--help`` at a fixed width, and each subcommand's of ``history``. ``python -m
tracecore_perf.cli.reference > docs/cli.md`` writes it; ``tests/test_docs.py`` fails when the
committed file is not what this prints."""

from __future__ import annotations

import argparse
import os
import sys

from tracecore_perf.cli import subcommand
from tracecore_perf.cli.args import COMMANDS

WIDTH = 100  # argparse wraps help to the terminal's width: fixed here, so the file is stable


def parser_of(command: str) -> argparse.ArgumentParser:
    module = subcommand(command)
    return module.run_parser() if command == "run" else module.parser()


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps them there, and nowhere public
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def reference() -> str:
    os.environ["COLUMNS"] = str(WIDTH)
    out = [
        "# CLI reference",
        "",
        "Generated from the parsers by `python -m tracecore_perf.cli.reference > docs/cli.md`;",
        "`tests/test_docs.py` fails when it is stale. Without a command, `python -m tracecore_perf`",
        "runs `run`.",
        "",
        "| command | what it does |",
        "|---|---|",
        *[f"| [`{name}`](#{name}) | {text} |" for name, text in COMMANDS.items()],
    ]
    for name in COMMANDS:
        parser = parser_of(name)
        out += ["", f"## {name}", "", "```text", parser.format_help().rstrip(), "```"]
        for action, sub in _subparsers(parser).items():
            out += ["", f"### {name} {action}", "", "```text", sub.format_help().rstrip(), "```"]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(reference())
