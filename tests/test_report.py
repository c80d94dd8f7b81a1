"""The report, for real: a run whose agents raise (one with an HTML error message) published
with ``run --report``, a clean run as its baseline, ``report`` on the command line, and the
pages opened in headless Chromium as a person would open them."""

from __future__ import annotations

import json
import re
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cdp import Chromium, chromium_path
from conftest import AGENTS, harness, scenario_file, wait_for, wait_watched

pytestmark = pytest.mark.slow  # every test here uses real runs

CHART_NAMES = ("latency", "distribution", "throughput", "resources", "artifacts", "failures")
HOSTILE = "<script>window.__pwned=1</script>"


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """8 episodes: two shipped agents, one that raises, one whose error message is HTML."""
    work = tmp_path_factory.mktemp("hostile")
    scenario = scenario_file(
        work / "scenario.json",
        [
            {"agent": "agents/toy_agent.py", "task_ref": "filesystem_hidden_config@1", "seed": 1},
            {"agent": "agents/chain_agent.py", "task_ref": "rate_limited_chain@1", "seed": 2},
            {"agent": str(AGENTS / "raising_agent.py"), "task_ref": "filesystem_hidden_config@1", "seed": 3},
            {"agent": str(AGENTS / "hostile_error_agent.py"), "task_ref": "rate_limited_api@1", "seed": 4},
        ],
    )
    done = harness(
        "--episodes", "8", "--workers", "2", "--scenario", str(scenario), "--output-dir", "out", "--report", "--json",
        "--no-progress", cwd=work,
    )  # fmt: skip
    return work, work / "out", done


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("clean")
    done = harness("--episodes", "4", "--workers", "2", "--output-dir", "out", "--json", "--no-progress", cwd=work)
    assert done.returncode == 0, done.stderr
    return work, work / "out", json.loads(done.stdout)["stamp"]


@pytest.fixture(scope="module")
def compared(hostile_run, clean_run):
    """``report`` of the hostile run against the clean one, written to a directory of its own."""
    work, out, done = hostile_run
    stamp = json.loads(done.stdout)["stamp"]
    target = work / "compared"
    target.mkdir()
    baseline = next(clean_run[1].glob("perf-manifest-*.json"))
    result = harness("report", stamp, "--baseline", str(baseline), "--search-dir", "out", "--output-dir", "compared", cwd=work)
    return target, stamp, result


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    return struct.unpack(">II", data[16:24])


def _report_html(out: Path) -> str:
    (path,) = out.glob("perf-report-*.html")
    return path.read_text(encoding="utf-8")


# --- run --report ----------------------------------------------------------------------


def test_run_with_report_names_the_report_and_writes_every_chart(hostile_run):
    work, out, done = hostile_run
    assert done.returncode == 1, done.stderr  # some episodes failed, and that is the run's exit code
    payload = json.loads(done.stdout)
    stamp = payload["stamp"]
    assert payload["artifacts"]["report"] == f"out/perf-report-{stamp}.html"
    assert (work / payload["artifacts"]["report"]).is_file()
    for name in CHART_NAMES:
        width, height = _png_size(out / f"perf-chart-{name}-{stamp}.png")
        assert width > 500 and height > 200, name
        svg = ET.parse(out / f"perf-chart-{name}-{stamp}.svg").getroot()
        assert svg.tag.endswith("svg"), name
    assert not list(out.glob("perf-chart-comparison-*")), "no baseline, no comparison chart"


def test_report_is_one_self_contained_file(hostile_run):
    _, out, _ = hostile_run
    html = _report_html(out)
    sources = re.findall(r'<img[^>]*\ssrc="([^"]*)"', html)
    assert len(sources) == len(CHART_NAMES)
    assert all(src.startswith("data:image/png;base64,") for src in sources)
    # Nothing is fetched: no URL with a scheme in any src/href, and a policy that forbids it.
    assert not re.findall(r'(?:src|href)="(?!data:|#|perf-chart-)', html)
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert "<script" not in html.lower()


def test_error_text_from_an_agent_is_escaped(hostile_run):
    _, out, _ = hostile_run
    html = _report_html(out)
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "<b>bold</b>" not in html
    assert "costs $5 and $x^2$" in html  # the '$'s did not trip matplotlib's math text either


def test_report_shows_the_summary_verdict_and_rows(hostile_run):
    _, out, done = hostile_run
    html = _report_html(out)
    summary = json.loads(done.stdout)["summary"]
    assert summary["failure_count"] == 4
    assert "check: FAIL" in html  # TraceCore's performance guide's failure_count == 0 threshold broke
    assert re.search(r"<td>failure_count</td>\s*<td[^>]*>0</td>\s*<td[^>]*>4</td>", html)
    assert "RuntimeError: fixture agent exploded on purpose" in html
    assert html.count("hostile_error_agent.py") >= 2  # scenario rows table and run context
    assert 'id="comparison"' not in html


# --- report RUN --baseline -------------------------------------------------------------


def test_report_subcommand_with_a_baseline_writes_the_comparison(compared, clean_run):
    target, stamp, result = compared
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"tracecore-perf report: compared/perf-report-{stamp}.html"
    html = _report_html(target)
    assert 'id="comparison"' in html and clean_run[2] in html
    assert _png_size(target / f"perf-chart-comparison-{stamp}.png")[0] > 500
    # the shipped agents' rows are in both runs; the raising ones only in this run
    side_by_side = html[html.index("Scenario rows side by side") :]
    assert re.search(r"agents/toy_agent\.py</td><td[^>]*>filesystem_hidden_config@1</td>\s*<td[^>]*>1 / 2</td>", side_by_side)
    assert re.search(r"hostile_error_agent\.py</td><td[^>]*>rate_limited_api@1</td>\s*<td[^>]*>– / 2</td>", side_by_side)
    assert len(re.findall(r'<img[^>]*\ssrc="data:image/png;base64,', html)) == len(CHART_NAMES) + 1


def test_rendering_the_same_run_twice_gives_the_same_files(hostile_run, compared):
    target, stamp, _ = compared
    _, out, _ = hostile_run
    for name in CHART_NAMES:
        for suffix in ("png", "svg"):
            file = f"perf-chart-{name}-{stamp}.{suffix}"
            assert (out / file).read_bytes() == (target / file).read_bytes(), file


# --- bad input ---------------------------------------------------------------------------

BAD = {
    "unknown run": (["20990101T000000Z"], "run 20990101T000000Z has no published manifest"),
    "not a run": (["yesterday"], "no such run, run directory or artifact: yesterday"),
    "unknown baseline": (["{stamp}", "--baseline", "20990101T000000Z"], "run 20990101T000000Z has no published manifest"),
    "baseline folder without a run": (["{stamp}", "--baseline", "empty"], "empty holds no published run"),
    "output dir missing": (["{stamp}", "--output-dir", "nowhere"], "--output-dir must be an existing folder: nowhere"),
    "unknown flag": (["{stamp}", "--colour"], "unknown option --colour (--help lists the options)"),
    "no run": ([], "the following arguments are required: run"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(clean_run, case):
    work, out, stamp = clean_run
    (work / "empty").mkdir(exist_ok=True)
    args, message = BAD[case]
    before = sorted(p.name for p in out.iterdir())
    done = harness("report", *[a.format(stamp=stamp) for a in args], "--search-dir", "out", cwd=work)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tracecore-perf: error: ") and message in lines[0], done.stderr
    assert done.stdout == ""
    assert sorted(p.name for p in out.iterdir()) == before
    assert not list(work.glob("**/perf-report-*")) and not list(work.glob("**/perf-chart-*"))


# --- in a real browser ---------------------------------------------------------------------

CHROMIUM = chromium_path()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian package 'chromium'; .ci/run installs it)"
)


@needs_chromium
@pytest.mark.parametrize("which", ["run --report", "report --baseline"])
def test_report_in_headless_chromium(hostile_run, compared, tmp_path, which):
    out = hostile_run[1] if which == "run --report" else compared[0]
    (page,) = out.glob("perf-report-*.html")
    expected_images = len(CHART_NAMES) + (which == "report --baseline")
    assert CHROMIUM is not None
    with Chromium(CHROMIUM, tmp_path / "profile") as browser:
        browser.open(page.as_uri())
        sizes = browser.image_sizes()
        text = browser.evaluate("document.body.innerText")
        pwned = browser.evaluate("typeof window.__pwned")
        scripts = browser.evaluate("document.scripts.length")
        title = browser.evaluate("document.title")
        errors = browser.console_errors()
    assert len(sizes) == expected_images
    assert all(width > 0 and height > 0 for width, height in sizes), sizes
    assert errors == []
    assert HOSTILE in text  # shown, as text
    assert pwned == "undefined" and scripts == 0  # and never run
    assert title.startswith("tracecore-perf report")


# --- a resumed run -------------------------------------------------------------------------


def test_a_resumed_run_is_charted_on_one_time_axis(tmp_path):
    """Interrupt a real run after two episodes have failed, resume it, report it: the attempts'
    clocks (which each restart at zero) are laid end to end, and the counters carry over."""
    import signal
    import subprocess
    import sys

    from tracecore_perf.published import locate
    from tracecore_perf.report.charts import RunData

    scenario = scenario_file(
        tmp_path / "scenario.json",
        [
            {"agent": str(AGENTS / "raising_agent.py"), "task_ref": "filesystem_hidden_config@1", "seed": 1},
            {"agent": str(AGENTS / "hanging_agent.py"), "task_ref": "filesystem_hidden_config@1", "seed": 2},
        ],
    )
    # Episodes 0 and 2 raise at once; 1 and 3 hang until the 3 s timeout, so the interrupt after
    # the second failure finds them in flight and the resume has them to run.
    args = ["--episodes", "4", "--workers", "2", "--timeout", "3", "--scenario", str(scenario), "--output-dir", "out"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracecore_perf", *args, "--log-format", "json", "--no-progress"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    # the run's own log (the console gets only a summary): interrupt once two rows are on disk
    def two_failed() -> bool:
        logs = [path.read_text() for path in (tmp_path / "out").glob("run-*/harness.log")]
        return sum('"episode.failed"' in line and "exploded on purpose" in line for log in logs for line in log.splitlines()) >= 2

    wait_for(two_failed, proc=proc, watch=[tmp_path], what="two failed episodes in the log", every_s=0.02)
    proc.send_signal(signal.SIGINT)
    assert wait_watched(proc, watch=[tmp_path]) == 130
    (run_dir,) = (tmp_path / "out").glob("run-*")
    resumed = harness("--resume", str(run_dir.relative_to(tmp_path)), "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 1, resumed.stderr

    run = locate(run_dir)
    assert run.manifest().status == "resumed" and len(run.manifest().attempts) == 2
    raw = run.series()
    assert {r.attempt for r in raw} == {1, 2}
    data = RunData.load(run)
    assert len(data.resumed_at) == 1
    first_attempt_end = max(r.started_s + r.wall_clock_s for r in raw if r.attempt == 1)
    assert data.resumed_at[0] >= first_attempt_end
    assert all(r.started_s >= data.resumed_at[0] for r in data.series if r.attempt == 2)
    times = [s.t_s for s in data.samples]
    assert times == sorted(times)
    done = [s.episodes_done for s in data.samples]
    assert done == sorted(done) and done[-1] == len(raw)
