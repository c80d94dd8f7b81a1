"""Output injection: an agent's file name and what it raises are the
attacker's text, and they reach outputs other programs read. Each sink gets them escaped for
itself (``tracecore_perf/escape.py``), and none lets them act:

- GitHub's runner: no line of ``--format github`` output (nor of the text format a CI log
  shows) starts a workflow command from agent text; our own commands carry it as escaped data;
- the step summary and the pull-request comment (``--format markdown``): no HTML, image,
  link, autolink, mention or issue reference, and every table row keeps its cells;
- rich (the end-of-run table): markup in data is shown, never parsed, and never crashes the
  table (a crash there was exit 70, and ``--check`` never ran);
- JUnit XML and the SVG charts: well-formed XML, whatever characters the agent used;
- the terminal: no escape sequence, control character or lone surrogate from agent text.

The fast tests render hand-made results holding the payloads through each exporter, in
process; the slow ones run real episodes of ``tests/agents/injecting_agent.py`` from a file
whose path spells the payloads, then every command a CI job runs on that run.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import msgspec
import pytest
from test_export_snapshots import comparison, failing_verdict

from tracecore_perf.export.markdown import MARKER
from tracecore_perf.verdicts.models import Estimate, Notice, WarningCode

from conftest import AGENTS, REPO, harness, scenario_file

TASK = "filesystem_hidden_config@1"

# What the payloads must never become, wherever they land.
FORGED = "::error file=x::forged"
STOP = "::stop-commands::tok"
# An agent's path: a scenario row names any file, and every part of its path but the last may
# hold a slash. Newlines, workflow commands, HTML, rich markup, a mention, an OSC 8 escape and
# characters XML 1.0 does not allow. (A lone surrogate cannot reach a published run: the
# scenario refuses it, see the last test; the sink functions are held to it all the same.)
NAME = (
    f"/work/evil\n{FORGED}\n{STOP}\n##[error]legacy <img src=x onerror=alert(1)> [link=https://evil]x[/link] [/oops]"
    " @octocat #1 ![i](https://evil.example/i.png) \x1b]8;;\x07\x1b[2J\ufffe.py"
)
ERROR = (
    f"RuntimeError: injected\n{FORGED}\n{STOP}\n##[warning]legacy <details><summary>s</summary> [click](https://x.example)"
    " www.evil.example @octocat [conceal]hid[/conceal] [/oops] \x1b]8;;https://evil\x07osc\x1b]8;;\x07\x08\r \ufffe\uffff\x01"
)
# Control characters a terminal acts on (C0 but the line feed our output ends lines with,
# DEL, C1), lone surrogates (unencodable), and the characters XML 1.0 does not allow.
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
OUR_COMMAND = re.compile(r"^::(error|warning|notice) title=([^:,\r\n]*)::([^\r\n]*)$")


# --- what each sink may show -----------------------------------------------------------


def assert_no_forged_command(text: str) -> list[str]:
    """No line starts a GitHub workflow command (the runner trims leading whitespace first)
    or holds the legacy ``##[`` form, except our own ``::error``/``::warning``/``::notice``
    lines, whose title and data hold no raw newline, colon or comma. Returns our lines."""
    ours = []
    for line in text.splitlines():
        if OUR_COMMAND.match(line):
            ours.append(line)
            continue
        assert not line.lstrip().startswith("::"), f"a forged workflow command: {line!r}"
        assert "##[" not in line, f"a forged legacy workflow command: {line!r}"
    for line in text.split("\n"):
        assert "\r" not in line, f"a carriage return, which the runner reads as a line end: {line!r}"
    return ours


def assert_no_control_character(text: str) -> None:
    found = CONTROL.search(text)
    assert found is None, f"control character {found.group()!r} in {text[max(0, found.start() - 60) : found.end() + 20]!r}"


def cells(row: str) -> int:
    """The cells of a markdown table row: pipes not escaped by a backslash."""
    count, escaped = 0, False
    for char in row:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "|":
            count += 1
    return count - 1


def assert_markdown_is_text(markdown: str) -> None:
    """No HTML, image, link, autolink, mention or issue reference; every row of a table has
    its header's cells; the marker line is the only HTML of ours."""
    lines = markdown.splitlines()
    assert lines[0] == MARKER
    body = "\n".join(lines[1:])
    assert "<" not in body, "raw HTML in the markdown"
    assert "](" not in body, "a link or an image in the markdown"
    assert "@octocat" not in body, "a mention in the markdown"
    assert "https://" not in body and "www.evil" not in body, "an autolink in the markdown"
    assert not re.search(r"(?<![\w&])#\d", body), "an issue reference in the markdown"
    assert_no_control_character(body)
    header = None
    for line in lines:
        if not line.startswith("|"):
            header = None
            continue
        header = header if header is not None else cells(line)
        assert cells(line) == header, f"a table row whose cells moved: {line!r}"


# --- fast: each exporter, in process, on results holding the payloads --------------------


def hostile_comparison():
    clean = comparison()
    rows = [msgspec.structs.replace(clean.rows[0], agent=NAME, task_ref=f"t@1 {ERROR}")] + clean.rows[1:]
    rows.append(
        msgspec.structs.replace(clean.rows[1], agent=f"{NAME}.2", verdict="slower", ratio=Estimate(value=1.2, low=1.1, high=1.3))
    )
    notice = Notice(code=WarningCode.SETUP_MISMATCH, message=f"SET-UP MISMATCH: scenario rows differ ({NAME} on t@1)")
    return msgspec.structs.replace(clean, rows=rows, baseline_only=[f"{NAME} on t@1"], notices=[*clean.notices, notice])


def hostile_verdict():
    clean = failing_verdict()
    reasons = msgspec.structs.replace(clean.thresholds[1], message=f"1 unexpected failure reason(s): {ERROR}")
    finding = msgspec.structs.replace(clean.findings[0], explanation=f"6 of 6 failures are on scenario row {NAME} on t@1")
    return msgspec.structs.replace(clean, thresholds=[clean.thresholds[0], reasons], findings=[finding, *clean.findings[1:]])


HOSTILE = {"comparison": hostile_comparison, "verdict": hostile_verdict}
CLEAN = {"comparison": comparison, "verdict": failing_verdict}


def emitted(fmt: str, result, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """What ``check``/``compare --format FMT`` writes: stdout, the step summary, the JUnit file."""
    from tracecore_perf.cli.output import emit

    stream = io.StringIO()
    summary, junit_file = tmp_path / f"summary-{fmt}.md", tmp_path / f"{fmt}.junit.xml"
    summary.unlink(missing_ok=True)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    emit(fmt, result, junit_file, stream=stream)
    return SimpleNamespace(
        stdout=stream.getvalue(),
        summary=summary.read_text(encoding="utf-8") if summary.exists() else None,
        junit=junit_file.read_bytes() if junit_file.exists() else None,
    )


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_github_format_forges_no_command_and_adds_none(name, tmp_path, monkeypatch):
    out = emitted("github", HOSTILE[name](), tmp_path, monkeypatch)
    ours = assert_no_forged_command(out.stdout)
    clean = assert_no_forged_command(emitted("github", CLEAN[name](), tmp_path, monkeypatch).stdout)
    added = 2 if name == "comparison" else 0  # the hostile comparison: one more notice, one more slower row
    assert len(ours) == len(clean) + added, "the payloads changed which commands are written"
    assert any("forged" in line and "%0A" in line for line in ours), "the payload never reached a command's data"
    assert_no_control_character(out.stdout)
    assert_markdown_is_text(out.summary)


def test_a_command_title_holds_agent_text_as_an_escaped_property(tmp_path, monkeypatch):
    ours = assert_no_forged_command(emitted("github", hostile_comparison(), tmp_path, monkeypatch).stdout)
    titles = [OUR_COMMAND.match(line).group(2) for line in ours]
    regressed = next(title for title in titles if "evil" in title)
    assert "%0A%3A%3Aerror file=x%3A%3Aforged%0A" in regressed, regressed


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_markdown_shows_agent_text_as_text(name, tmp_path, monkeypatch):
    out = emitted("markdown", HOSTILE[name](), tmp_path, monkeypatch)
    assert_markdown_is_text(out.stdout)
    assert "img src=x" in out.stdout and "octocat" in out.stdout, "the payload never reached the markdown"


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_text_format_holds_no_control_character_and_no_command(name, tmp_path, monkeypatch):
    out = emitted("text", HOSTILE[name](), tmp_path, monkeypatch)
    assert assert_no_forged_command(out.stdout) == []
    assert_no_control_character(out.stdout)
    assert "\\x0a::error file=x::forged" in out.stdout, "the agent's newline is not shown escaped"


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_junit_is_well_formed_xml_keeping_the_text(name, tmp_path, monkeypatch):
    out = emitted("junit", HOSTILE[name](), tmp_path, monkeypatch)
    root = ET.fromstring(out.junit)
    texts = [value for element in root.iter() for value in [element.text or "", *element.attrib.values()]]
    assert any("evil" in value and "onerror" in value for value in texts), "the payload never reached the JUnit file"
    assert not any(NOT_XML.search(value) for value in texts)


def baseline():
    """The committed baseline run (made with --instructions), for a summary and a manifest."""
    from tracecore_perf.published import locate

    return locate(str(REPO / "deliverables" / "perf" / "baseline-slice-instructions"))


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_json_format_is_the_same_document_with_no_legacy_command(name, tmp_path, monkeypatch):
    """JSON escapes control characters itself; a string's ``##[`` (the runner's legacy command
    form, read anywhere in a line) is written with a JSON escape, which reads back the same."""
    result = HOSTILE[name]()
    out = emitted("json", result, tmp_path, monkeypatch)
    assert assert_no_forged_command(out.stdout) == []
    assert msgspec.json.decode(out.stdout, type=type(result)) == result


def test_the_console_table_shows_markup_as_text(capsys, monkeypatch):
    from tracecore_perf.run.console import print_summary

    run = baseline()
    summary, manifest = run.summary(), run.manifest()
    instructions = [msgspec.structs.replace(summary.instructions[0], agent=NAME, task_ref=f"t@1 {ERROR}")]
    integrity = msgspec.structs.replace(summary.integrity, problems=[f"changed agent file {NAME}"])
    summary = msgspec.structs.replace(summary, failure_reasons={ERROR: 3}, instructions=instructions, integrity=integrity)
    monkeypatch.setenv("COLUMNS", "3000")  # one line per table row: the literal text stays whole
    print_summary(summary, manifest, {"summary": f"/out/{NAME}"}, run_dir=f"/out/run [/oops] {NAME}")
    shown = capsys.readouterr().out
    assert "[conceal]hid[/conceal] [/oops]" in shown, shown
    assert "[link=https://evil]x[/link] [/oops]" in shown, shown
    assert_no_control_character(shown)


def test_a_chart_label_from_an_agent_keeps_the_svg_well_formed():
    from matplotlib.figure import Figure

    from tracecore_perf.report.charts import encode_figure, row_label, shorten

    fig = Figure(figsize=(4, 2))
    ax = fig.subplots()
    ax.annotate(shorten(ERROR, 140), xy=(0.1, 0.5))
    ax.set_yticks([0], [row_label(baseline().manifest(), 99, NAME, ERROR)])  # a row the scenario does not name
    ET.fromstring(encode_figure(fig, "svg"))  # raises on a character XML 1.0 does not allow


@pytest.mark.parametrize("text", [NAME, ERROR, "a\x00b\x0bc\x1fd\x7fe\x85f\x9fg\ud800h\udfffi\ufffej\uffffk"])
def test_every_sink_function_makes_the_text_safe_for_its_sink(text):
    from tracecore_perf import escape

    assert_no_control_character(escape.terminal(text))
    assert escape.terminal(escape.terminal(text)) == escape.terminal(text), "escaping twice shows escapes escaped"
    assert not NOT_XML.search(escape.xml(text))
    element = ET.Element("a", b=escape.xml(text))
    element.text = escape.xml(text)
    ET.fromstring(ET.tostring(element, encoding="utf-8"))
    for data in (escape.github_command(text), escape.github_property(text)):
        assert "\n" not in data and "\r" not in data
        assert_no_control_character(data)
    assert ":" not in escape.github_property(text) and "," not in escape.github_property(text)
    encoded = json.dumps({"text": text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")})
    assert "##[" not in escape.json(encoded) and json.loads(escape.json(encoded)) == json.loads(encoded)
    line = escape.log_line(text)
    assert "\n" not in line
    assert assert_no_forged_command(line) == []
    assert_markdown_is_text(f"{MARKER}\n| a | {escape.markdown(text)} |\n|---|---|\n| x | {escape.markdown(text)} |")
    from rich.console import Console

    console = Console(file=io.StringIO(), width=3000, color_system=None)
    console.print(escape.rich(text))
    assert_no_control_character(console.file.getvalue())


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("a|b.py", "a\\|b.py"),
        ("cr\rx.py", "cr x.py"),
        ("n\nl.py", "n l.py"),
        ("bs\\|x.py", "bs\\\\\\|x.py"),
        ("<b>&", "&lt;b&gt;&amp;"),
        ("[x](y)", "\\[x\\]\\(y)"),
        ("*b* _i_ __init__ a_b", "\\*b\\* \\_i\\_ \\_\\_init\\_\\_ a_b"),  # an intraword _ emphasises nothing
        ("filesystem_hidden_config@1", "filesystem_hidden_config@1"),  # nor does a task ref's @ start a mention
        ("cc @octocat", "cc @\u2060octocat"),
        ("fixes #12", "fixes #\u206012"),
        ("https://x.example", "https:\u2060//x.example"),
    ],
)
def test_a_markdown_cell_is_one_line_of_literal_text(text, shown):
    """An agent's path may hold anything: a table row must stay one row of the same cells,
    and show the text as it is."""
    from tracecore_perf.escape import markdown

    assert markdown(text) == shown


# --- slow: real episodes, then what a CI job runs on them -------------------------------


def hostile_agent(work: Path) -> str:
    """``injecting_agent.py`` copied where its path spells the payloads (an OSC 8 escape and
    U+FFFE in its file name, a newline and workflow commands in a folder's): the path as the
    scenario names it, slashes of the markup included."""
    path = (
        f"{work}/evil\n{FORGED}\n{STOP}\n##[error]legacy <img src=x onerror=alert(1)> @octocat [link=https:"
        "//evil]x[/link] [/oops] \x1b]8;;\ufffe.py"
    )
    os.makedirs(os.path.dirname(path), exist_ok=True)
    shutil.copyfile(AGENTS / "injecting_agent.py", path)
    return path


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory) -> SimpleNamespace:
    """12 episodes, half of them the injecting agent's (so check names it in a failure
    cluster), with ``--check`` and ``--report``, as a user runs it on a terminal 3000 columns
    wide; then ``report`` against itself as a baseline (the comparison chart)."""
    work = tmp_path_factory.mktemp("injection")
    agent = hostile_agent(work)
    rows = [{"agent": agent, "task_ref": TASK, "seed": 1}, {"agent": "agents/toy_agent.py", "task_ref": TASK, "seed": 1}]
    scenario = scenario_file(work / "scenario.json", rows)
    env = {"COLUMNS": "3000"}
    done = harness(
        "--scenario", str(scenario), "--episodes", "12", "--workers", "2", "--no-progress", "--output-dir", "out",
        "--check", "--report", cwd=work, env=env,
    )  # fmt: skip
    (run_dir,) = (work / "out").glob("run-*")
    (work / "compared").mkdir()
    report = harness("report", str(run_dir), "--baseline", str(run_dir), "--output-dir", "compared", cwd=work)
    return SimpleNamespace(work=work, agent=agent, run=done, run_dir=run_dir, report=report, env=env)


def command(hostile_run: SimpleNamespace, *args: str, env: dict | None = None):
    return harness(*args, cwd=hostile_run.work, env={**hostile_run.env, **(env or {})})


@pytest.mark.slow
def test_the_run_publishes_checks_and_ends_as_without_the_payloads(hostile_run):
    run = hostile_run.run
    assert run.returncode == 1, run.stderr[-3000:]  # episodes failed: as a plain raising agent's run ends
    assert "internal error" not in run.stderr and "Traceback" not in run.stderr, run.stderr[-3000:]
    assert re.search(r"^tracecore-perf check \S+: FAIL$", run.stdout, re.M), "--check never ran"
    series = [json.loads(line) for line in (hostile_run.run_dir / "series.jsonl").read_text().splitlines()]
    hostile = [row for row in series if row["agent"] == hostile_run.agent]
    assert len(hostile) == 6 and all(not row["success"] for row in hostile)
    assert all("[/oops]" in row["error"] and "\n" not in row["error"] for row in hostile), hostile[0]["error"]


@pytest.mark.slow
def test_the_console_shows_markup_as_text_and_no_escape_reaches_it(hostile_run):
    run = hostile_run.run
    assert "[conceal]hid[/conceal] [/oops]" in run.stdout, run.stdout
    assert "[link=https://evil]x[/link] [/oops]" in run.stdout, run.stdout
    assert_no_control_character(run.stdout)
    assert_no_control_character(run.stderr)
    assert_no_forged_command(run.stdout + "\n" + run.stderr)


@pytest.mark.slow
def test_check_in_github_format_forges_no_command(hostile_run, tmp_path):
    summary = tmp_path / "step-summary.md"
    done = command(
        hostile_run, "check", str(hostile_run.run_dir), "--format", "github", env={"GITHUB_STEP_SUMMARY": str(summary)}
    )
    assert done.returncode == 1, done.stderr
    ours = assert_no_forged_command(done.stdout)
    assert any("failure_cluster" in line and "evil%0A" in line for line in ours), done.stdout  # the name reached
    assert_no_control_character(done.stdout)
    assert_markdown_is_text(summary.read_text(encoding="utf-8"))


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["github", "markdown", "text", "json"])
def test_compare_shows_the_agent_as_text(hostile_run, fmt):
    done = command(hostile_run, "compare", str(hostile_run.run_dir), str(hostile_run.run_dir), "--format", fmt)
    assert done.returncode == 0, done.stderr
    assert "evil" in done.stdout and "octocat" in done.stdout, "the agent's name never reached the comparison"
    if fmt == "markdown":
        assert_markdown_is_text(done.stdout)
    elif fmt == "json":
        assert assert_no_forged_command(done.stdout) == []
        assert any("##[error]legacy" in row["agent"] for row in json.loads(done.stdout)["rows"])
    else:
        assert_no_forged_command(done.stdout)
        assert_no_control_character(done.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["check", "compare"])
def test_junit_files_are_well_formed_xml(hostile_run, which):
    target = hostile_run.work / f"{which}.junit.xml"
    runs = [str(hostile_run.run_dir)] * (1 if which == "check" else 2)
    done = command(hostile_run, which, *runs, "--format", "junit", "--junit-file", str(target))
    assert done.returncode in (0, 1), done.stderr
    root = ET.parse(target).getroot()
    assert any("evil" in (case.get("name") or "") + ET.tostring(case, encoding="unicode") for case in root.iter("testcase"))


@pytest.mark.slow
def test_every_chart_is_well_formed_svg(hostile_run):
    assert hostile_run.report.returncode == 0, hostile_run.report.stderr
    charts = sorted((hostile_run.work / "out").glob("*.svg")) + sorted((hostile_run.work / "compared").glob("*.svg"))
    assert any(p.name.startswith("perf-chart-failures-") for p in charts)
    assert any(p.name.startswith("perf-chart-comparison-") for p in charts)
    for chart in charts:
        ET.parse(chart)  # raises on a character XML 1.0 does not allow
    assert "Glyph 27" not in hostile_run.run.stderr, "an escape character reached a chart's text"


@pytest.mark.slow
@pytest.mark.parametrize(
    "row",
    [
        {"agent": "agents/toy_agent.py", "task_ref": f"nope@1\n{FORGED}\x1b[2J\ufffe"},
        {"agent": f"/nowhere/evil\n{FORGED}\n##[error]legacy\x1b[2J\ufffe.py", "task_ref": TASK},
        {"agent": "/nowhere/undecodable-\udc80.py", "task_ref": TASK},  # a file name's byte 0x80, as JSON spells it
    ],
    ids=["task-ref", "missing-agent", "lone-surrogate"],
)
def test_bad_agent_text_is_refused_in_one_escaped_line(tmp_path, row):
    """Bad input naming agent text is one line on stderr, exit 2, and shows it escaped; a
    lone surrogate (which no UTF-8 file of the run could record) is refused, not a crash."""
    scenario = scenario_file(tmp_path / "s.json", [{**row, "seed": 1}])
    done = harness("--scenario", str(scenario), "--episodes", "1", "--no-progress", "--output-dir", "out", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("tracecore-perf: error: "), done.stderr
    assert_no_control_character(done.stderr)
    assert_no_forged_command(done.stderr)
