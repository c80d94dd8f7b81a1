"""The docs say what the code does: the CLI reference is the parsers' own help, every command
shown in the README and ``docs/`` parses with today's flags (a flag that no longer exists fails
here), every script a doc runs takes the flags it is shown with, every relative link resolves,
and the README fits on a few screens. In process: nothing here starts a process."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tracecore_perf.cli import SUBCOMMANDS
from tracecore_perf.cli.reference import parser_of, reference
from tracecore_perf.errors import UsageError

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
README_MAX_LINES = 200


def test_the_cli_reference_is_what_the_parsers_say():
    committed = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == reference(), "docs/cli.md is stale: python -m tracecore_perf.cli.reference > docs/cli.md"


def test_the_readme_fits_on_a_few_screens():
    assert len((REPO / "README.md").read_text().splitlines()) <= README_MAX_LINES


# --- every command shown ------------------------------------------------------------------

COMMAND = re.compile(r"python -m tracecore_perf(?![.\w])([^`\n|]*(?:\|[^`\n|]*)*)")
SCRIPT = re.compile(r"python (scripts/[\w.]+\.py)([^`\n]*)")


def _shown(pattern: re.Pattern) -> list[tuple[str, ...]]:
    """(doc, the command's text, its groups) for each command shown in a doc: in shell code
    blocks, and in inline code (which may wrap across lines). The CLI reference, generated from
    the parsers, is left out; so are diagrams (code blocks without a shell language)."""
    found = []
    for doc in DOCS:
        if doc.name == "cli.md":
            continue
        text = doc.read_text(encoding="utf-8")
        pieces = []
        for language, block in re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M):
            if language in ("bash", "sh", "shell", "console"):
                pieces += block.splitlines()
        prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
        pieces += [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", prose)]
        for piece in pieces:
            for chunk in re.split(r"&&|;", piece):
                for match in pattern.finditer(chunk):
                    found.append((doc.name, match.group(0).strip(), *match.groups()))
    return found


PLACEHOLDERS = {"N": "2", "S": "1", "K": "2"}  # a doc's numeric placeholders, as a number


def _argv(text: str) -> list[str]:
    """The arguments as a user would type them: a doc's ``[optional]`` parts included, the first
    of ``a|b`` alternatives, ``<placeholders>`` as a word, without ``...``, ``# comments``,
    ``\\`` continuations or what is piped on."""
    text = text.split(" #")[0].split(" | ")[0].split(" > ")[0].replace("\\", " ")
    text = re.sub(r"\[([^\]]*)\]", r"\1", text)
    words = []
    for word in shlex.split(text, posix=True):
        word = re.sub(r"<[^>]*>", "X", word).replace("...", "").split("|")[0].rstrip(",;:")
        if word and not word.startswith("$"):
            words.append(PLACEHOLDERS.get(word, word))
    return words


def _parse(argv: list[str]) -> None:
    command = argv.pop(0) if argv and argv[0] in SUBCOMMANDS else "run"
    if command == "run":
        from tracecore_perf.cli.run import parse

        parse(argv)
    else:
        parser_of(command).parse_args(argv)


SHOWN = _shown(COMMAND)


def test_the_docs_show_commands():
    assert len(SHOWN) > 30, "the extraction found too few commands to have read the docs"


@pytest.mark.parametrize(("doc", "text", "args"), SHOWN, ids=[f"{d}:{t[:60]}" for d, t, _ in SHOWN])
def test_every_command_shown_parses(doc: str, text: str, args: str):
    argv = _argv(args)
    if "--help" in argv or "--version" in argv:
        return  # argparse would print and exit: the flag exists on every parser
    try:
        _parse(argv)
    except (UsageError, SystemExit) as exc:
        pytest.fail(f"{doc}: `{text}` does not parse: {exc}")


SCRIPTS = _shown(SCRIPT)


@pytest.mark.parametrize(("doc", "text", "script", "args"), SCRIPTS, ids=[f"{d}:{t[:60]}" for d, t, _, _ in SCRIPTS])
def test_every_script_shown_exists_and_takes_its_flags(doc: str, text: str, script: str, args: str):
    path = REPO / script
    assert path.is_file(), f"{doc}: `{text}` names no such script"
    source = path.read_text(encoding="utf-8")
    if "add_comparison_flags" in source:  # the package's own compare flags, shared with the script
        source += (REPO / "tracecore_perf" / "cli" / "args.py").read_text(encoding="utf-8")
    for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", args):
        # `"--flag"`, or its name in a loop that adds `f"--{name}"` flags
        assert f'"{flag}"' in source or f'"{flag[2:]}"' in source, f"{doc}: `{text}`: {script} has no {flag}"


# --- links ------------------------------------------------------------------------------------

LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_relative_link_resolves(doc: Path):
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        assert file.exists(), f"{doc.name}: link to {target}: no such file"
        if anchor and file.suffix == ".md":
            headings = [line.lstrip("#") for line in file.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
            assert anchor in {_anchor(h) for h in headings}, f"{doc.name}: link to {target}: no such heading"


def test_a_shown_command_with_a_flag_that_no_longer_exists_fails():
    with pytest.raises(UsageError):
        _parse(_argv(" --episodes N --no-such-flag"))
    with pytest.raises(UsageError):
        _parse(_argv(" compare A B --no-such-flag"))
