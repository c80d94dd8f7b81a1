"""Text from agents, escaped for the sink it reaches: one function per sink.

Agent file names, what an episode raised, failure reasons and types, task refs and the paths
that hold them are the attacker's text (``docs/containment.md``, "Output sinks"). Every
output another program reads gets them through the function of its kind, applied where the
text is written, never where it is stored (a row keeps what happened; ``run/orchestrator``
only makes its error one line with :func:`terminal`):

- :func:`terminal`: control characters shown escaped (what a row's error keeps);
- :func:`log_line`: a line of plain output, or a piece of one, on a terminal or in a CI log:
  :func:`terminal`, and no GitHub workflow command can start in it (GitHub's runner reads
  every line of a step's output for them);
- :func:`github_command` and :func:`github_property`: a workflow command's data and
  properties (``::error title=PROPERTY::DATA``);
- :func:`markdown`: one line of literal text inside markdown (a table cell, a sentence);
- :func:`rich`: data in a rich renderable (the end-of-run table): never parsed as markup;
- :func:`xml`: text for an XML document (JUnit, SVG) whose writer escapes ``&<>"`` itself;
- :func:`json`: encoded JSON printed where a CI runner reads it (``--json``, JSON logs).

Each is idempotent on its own output where that matters (text already made one line by
:func:`terminal` is not escaped again), and none raises on any ``str``, lone surrogates
included. Standard library only, but for rich, imported when :func:`rich` is called.

Every command imports this module first thing (``cli/``), so it costs nearly nothing to
import: no ``typing``, ``html`` only when :func:`markdown` runs, and its patterns are strings
``re`` compiles (and caches) the first time one is used.
"""

from __future__ import annotations

import re

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from rich.text import Text

# --- terminal ----------------------------------------------------------------------------

# What a terminal acts on or what cannot be written at all: C0 controls (ESC starts escape
# sequences, BEL ends OSC ones, BS and CR rewrite what was shown, LF and the rest start lines),
# DEL, C1 controls (CSI, OSC as single characters), lone surrogates (no encoding writes them),
# the Unicode line and paragraph separators, and the bidirectional formatting characters that
# reorder what is shown (the "Trojan Source" ones).
_TERMINAL = "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]"


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal(text: str) -> str:
    """``text`` as one printable line: each control character, lone surrogate, line separator
    and bidirectional formatting character shown escaped (``\\x1b``, ``\\x0a``, ``\\u202e``),
    the rest as it is."""
    return re.sub(_TERMINAL, _shown, text)


# --- GitHub Actions ----------------------------------------------------------------------

# GitHub's runner reads every line of a step's output for workflow commands: ``::name ...::``
# at the start of the line once leading whitespace is trimmed, and the legacy ``##[name]``
# anywhere in it. A word joiner (U+2060, invisible, not whitespace to the runner's trim) breaks
# both, and shows the text as it is.
_JOINER = "\u2060"
_COMMAND_START = r"^(\s*):"
_LEGACY_COMMAND = r"#(?=#\[)"


def log_line(line: str) -> str:
    """A line of plain output a person or a CI runner reads (the text format, a console line,
    a one-line error), or a piece of one (a table cell, a log event's value): :func:`terminal`,
    and no GitHub workflow command can start in it. Our own ``::error``/``::warning`` lines
    are built with :func:`github_command` instead."""
    line = terminal(line)
    if line.lstrip().startswith("::"):
        line = re.sub(_COMMAND_START, lambda m: m.group(1) + _JOINER + ":", line, count=1)
    return re.sub(_LEGACY_COMMAND, "#" + _JOINER, line)


def github_command(text: str) -> str:
    """A workflow command's data, escaped as GitHub documents it (and ``@actions/core`` does:
    ``%``, CR, LF), then its other control characters shown escaped (:func:`terminal`)."""
    return terminal(text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))


def github_property(text: str) -> str:
    """A workflow command's property value (``title=``): its data escaping, and ``:`` and ``,``."""
    return github_command(text).replace(":", "%3A").replace(",", "%2C")


# --- markdown ----------------------------------------------------------------------------

# Backslash-escaped (CommonMark escapes any ASCII punctuation): the backslash itself, code
# spans, emphasis and strikethrough, links and images (``[``, ``]``, and a ``(`` after a
# ``]``: no ``](`` is left), a table's cell separator, and GitHub's math (``$``). An
# underscore between two letters or digits is kept as it is (``toy_agent``): an intraword
# ``_`` neither opens nor closes emphasis. ``<``, ``>`` and ``&`` are entities (html.escape),
# so no tag, comment or autolink opens. Block syntax needs the start of a line, which
# markdown() text never is.
_MARKDOWN = str.maketrans({c: "\\" + c for c in "\\`*[]~|$"})
_UNDERSCORE = r"(?<![^\W_])_|_(?![^\W_])"
# GitHub links what it recognises in the rendered text, where entities are already decoded:
# a mention (@ after a non-word character), an e-mail address (@ before a domain), an issue
# reference (#12, GH-12), a bare URL (scheme://, www.). A word joiner after the @ or #, the
# scheme's colon or in www. breaks each; a task ref's version (toy@1) starts none and is kept.
_MENTION = r"(?<!\w)@|@(?!\d+(?![\w.\-]))"
_REFERENCE = r"(?i)(#|\bGH-)(?=\d)"
_URL = r"(?i)(\b[a-z][a-z0-9+.\-]*:)(?=//)|(\bwww)(?=\.)"


def markdown(text: str) -> str:
    """``text`` as one line of literal markdown, safe in a table cell: its line breaks made
    spaces, its other control characters shown escaped (:func:`terminal`), no HTML, link,
    image, emphasis, mention, issue reference or autolink, and its pipes escaped."""
    import html

    text = terminal(" ".join(text.splitlines()))  # \r, \n, and the other line breaks
    text = re.sub(_UNDERSCORE, r"\\_", text.translate(_MARKDOWN)).replace("\\](", "\\]\\(")
    text = html.escape(text, quote=False)  # &, <, >
    text = re.sub(_MENTION, "@" + _JOINER, text)
    text = re.sub(_REFERENCE, lambda m: m.group(1) + _JOINER, text)
    return re.sub(_URL, lambda m: (m.group(1) or m.group(2)) + _JOINER, text)


# --- rich --------------------------------------------------------------------------------


def rich(text: str) -> Text:
    """``text`` as a rich ``Text``: shown as it is, never parsed for markup (``[link=...]``,
    ``[/oops]``) or emoji codes, its control characters shown escaped and no workflow command
    in it (:func:`log_line`: the table is printed on stdout, which a CI runner reads).

    A ``Text`` rather than ``rich.markup.escape(text)``: escaping covers markup only, and a
    string cell would still be parsed for emoji codes; a ``Text`` is parsed for nothing."""
    from rich.text import Text

    return Text(log_line(text))


# --- XML ---------------------------------------------------------------------------------

# What XML 1.0 does not allow: its Char production is tab, LF, CR, U+0020-U+D7FF,
# U+E000-U+FFFD and U+10000 and up, so the rest of what a str holds is this. Neither the
# standard library (ElementTree, xml.sax.saxutils) nor matplotlib's SVG writer drops it; they
# would write a document no parser reads.
_NOT_XML = "[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]"


def xml(text: str) -> str:
    """``text`` for an XML document: each character XML 1.0 does not allow (C0 controls but
    tab, LF and CR; lone surrogates; U+FFFE and U+FFFF) shown escaped (``\\ufffe``). The
    markup escaping (``&``, ``<``, ``>``, quotes) is the writer's: ElementTree and matplotlib
    do it, so it is not done twice here."""
    return re.sub(_NOT_XML, _shown, text)


# --- JSON --------------------------------------------------------------------------------


def json(encoded: str) -> str:
    """Encoded JSON (one document or JSON lines) for stdout or stderr, where a CI runner reads
    every line: JSON escapes control characters itself, and no line of it can start with
    ``::``, but a string may hold the legacy ``##[`` command form. Its second ``#`` is written
    as the JSON escape ``\\u0023``: the same document to every JSON reader."""
    return encoded.replace("##[", "#\\u0023[")
