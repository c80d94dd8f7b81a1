"""Memory benchmark: the harness's own peak RSS at 5,000 episodes against 500.

Runs ``python -m tracecore_perf`` twice in forkserver mode on the default scenario, with
the same flags except ``--episodes``, and reads the harness's peak RSS two ways:

- ``summary``: the published summary's ``resources.harness_peak_rss_bytes`` (the
  harness's own monitor, one psutil reading every ``--sample-interval``, default 0.5 s);
- ``psutil``: this script's own sampling of the harness PID every 50 ms, independent of
  the harness (the harness process only: not its workers, not the episode processes).

Both runs use ``--keep-runs none`` (TraceCore's run artifacts are measured for the summary,
then deleted at the end of the run) so a 5,000-episode run does not leave ~5,000 JSON
files behind; the harness never holds those artifacts in memory either way, so this does
not change what is measured. Target: peak at 5,000 within 10% of the peak at 500.

Usage::

    python scripts/memory_bench.py                         # 500 vs 5000, workers 8
    python scripts/memory_bench.py --small 50 --large 500  # a quick check of the script
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import REPO, git_commit, load_avg, timed  # noqa: E402

TARGET_GROWTH = 0.10


def measure(episodes: int, args: argparse.Namespace, work: Path) -> dict:
    cwd = Path(tempfile.mkdtemp(prefix=f"mem-{episodes}-", dir=work))
    cmd = [
        args.python,
        "-m",
        "tracecore_perf",
        "--episodes",
        str(episodes),
        "--workers",
        str(args.workers),
        "--isolation",
        "forkserver",
        "--keep-runs",
        "none",
        "--output-dir",
        str(cwd / "out"),
        "--json",
        "--no-progress",
    ]
    print(f"[memory] {episodes} episodes (load {load_avg()})", file=sys.stderr, flush=True)
    done = timed(cmd, cwd, keep_series=True)
    try:
        summary = json.loads(done["stdout"])["summary"]
    except (ValueError, KeyError):
        summary = None
    series = done.pop("rss_series")
    record = {
        "episodes": episodes,
        "returncode": done["returncode"],
        "whole_s": done["whole_s"],
        "load_avg_before": done["load_avg_before"],
        "psutil_peak_rss_bytes": done["top_process_peak_rss_bytes"],
        "psutil_samples": len(series),
        # when the peak happened, as a fraction of the run: a late peak is the publishing phase
        "psutil_peak_at_fraction": _peak_at(series),
        "psutil_series_downsampled": series[:: max(len(series) // 200, 1)],
        # RSS at the start, middle and end of the run, to show a trend rather than a peak
        "psutil_rss_at": {
            f"{int(q * 100)}%": series[min(int(q * len(series)), len(series) - 1)][1] for q in (0.1, 0.25, 0.5, 0.75, 0.9)
        }
        if series
        else {},
        "summary_peak_rss_bytes": summary["resources"]["harness_peak_rss_bytes"] if summary else None,
        "summary_rss_start_bytes": summary["system_samples"]["process_rss_bytes_start"] if summary else None,
        "passed": summary["success_count"] if summary else None,
        "failed": summary["failure_count"] if summary else None,
        "stderr_tail": done["stderr_tail"][-500:],
    }
    print(
        f"[memory] {episodes}: exit {record['returncode']}, {record['whole_s']:.1f} s, peak psutil "
        f"{_mb(record['psutil_peak_rss_bytes'])} MB, summary {_mb(record['summary_peak_rss_bytes'])} MB",
        file=sys.stderr,
        flush=True,
    )
    if not args.keep_work:
        shutil.rmtree(cwd, ignore_errors=True)
    return record


def _peak_at(series: list[tuple[float, int]]) -> float | None:
    if not series:
        return None
    t_peak = max(series, key=lambda point: point[1])[0]
    return round(t_peak / series[-1][0], 4) if series[-1][0] else None


def _mb(value) -> str:
    return "-" if not value else f"{value / 1e6:.2f}"


def growth(large: int | None, small: int | None) -> float | None:
    return None if not large or not small else round(large / small - 1, 4)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--large", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--out-dir", type=Path, default=REPO / "deliverables" / "perf" / "bench")
    parser.add_argument("--keep-work", action="store_true")
    args = parser.parse_args(argv)

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    work = Path(tempfile.mkdtemp(prefix="tracecore-membench-"))
    try:
        small = measure(args.small, args, work)
        large = measure(args.large, args, work)
    finally:
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    psutil_growth = growth(large["psutil_peak_rss_bytes"], small["psutil_peak_rss_bytes"])
    summary_growth = growth(large["summary_peak_rss_bytes"], small["summary_peak_rss_bytes"])
    verdicts = {
        name: None if value is None else value <= TARGET_GROWTH
        for name, value in (("psutil", psutil_growth), ("summary", summary_growth))
    }
    report = {
        "stamp": stamp,
        "git_commit": git_commit(),
        "workers": args.workers,
        "isolation": "forkserver",
        "keep_runs": "none",
        "load_avg_end": load_avg(),
        "small": small,
        "large": large,
        "growth": {"psutil": psutil_growth, "summary": summary_growth},
        "target": f"peak at {args.large} within {TARGET_GROWTH:.0%} of peak at {args.small}",
        "pass": verdicts,
    }
    lines = [
        f"# Harness peak RSS: {args.large} vs {args.small} episodes ({stamp})",
        "",
        f"forkserver, workers {args.workers}, `--keep-runs none`, default scenario; commit {report['git_commit'][:10]}. "
        "Harness process only (not workers or episode processes).",
        "",
        "| episodes | whole s | passed/failed | peak RSS MB (psutil, 50 ms) | peak RSS MB (summary) "
        "| RSS MB at 10% / 50% / 90% of run | peak at (fraction of run) | load before |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rec in (small, large):
        at = rec["psutil_rss_at"]
        trend = " / ".join(_mb(at.get(k)) for k in ("10%", "50%", "90%"))
        lines.append(
            f"| {rec['episodes']} | {rec['whole_s']:.1f} | {rec['passed']}/{rec['failed']} | {_mb(rec['psutil_peak_rss_bytes'])} "
            f"| {_mb(rec['summary_peak_rss_bytes'])} | {trend} | {rec['psutil_peak_at_fraction']} | {rec['load_avg_before']} |"
        )
    for name, value in report["growth"].items():
        verdict = "n/a" if verdicts[name] is None else ("PASS" if verdicts[name] else "FAIL")
        shown = "-" if value is None else f"{value:+.1%}"
        lines.append(f"\nGrowth ({name}): {shown}; target <= +{TARGET_GROWTH:.0%}: {verdict}")
    text = "\n".join(lines) + "\n"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"memory-{stamp}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out_dir / f"memory-{stamp}.md").write_text(text)
    print(text)
    return 0 if all(v is not False for v in verdicts.values()) and small["returncode"] == large["returncode"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
