"""Measurement validity benchmark (not a test): can ``compare`` be trusted?

1. Identical code: PAIRS pairs of runs of the same fixture agent doing the same work;
   ``compare`` should report no significant change in at least 9 of 10.
2. A twin doing 20% more work per step: PAIRS pairs where the current run's agent does
   ``--extra`` more work per step (tests/agents/busy_agent.py, BUSY_AGENT_ROUNDS);
   ``compare`` should call it slower in at least 9 of 10.

Every run is a real ``python -m tracecore_perf`` run; each pair is judged on both
``wall_clock_s`` (what the seed guide charts) and ``cpu_s`` (the kernel's CPU accounting of
the episode process, which a busy host disturbs far less). The host's load is printed at the
start and the end, because on a shared machine the wall-clock figures are only as good as
the host is quiet.

    python scripts/validity_bench.py [--pairs 10] [--episodes 20] [--rounds 20000] [--extra 0.2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tracecore_perf.compare import Settings, compare_runs  # noqa: E402
from tracecore_perf.hostinfo import BusyProbe, host_context  # noqa: E402
from tracecore_perf.loadrun import locate  # noqa: E402

AGENT = REPO / "tests" / "agents" / "busy_agent.py"
TASK = "filesystem_hidden_config@1"
METRICS = ("wall_clock_s", "cpu_s")


def run(work: Path, name: str, rounds: int, episodes: int, workers: int) -> Path:
    out = work / name
    scenario = work / "scenario.json"
    if not scenario.exists():
        scenario.write_text(json.dumps([{"agent": str(AGENT), "task_ref": TASK, "seed": 1}]))
    done = subprocess.run(
        [sys.executable, "-m", "tracecore_perf", "--episodes", str(episodes), "--workers", str(workers)]
        + ["--scenario", str(scenario), "--output-dir", str(out), "--no-progress", "--log-format", "json"],
        cwd=work,
        env={**os.environ, "BUSY_AGENT_ROUNDS": str(rounds)},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"run {name} failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    (run_dir,) = out.glob("run-*")
    return run_dir


def judge(base: Path, current: Path) -> dict[str, dict]:
    verdicts = {}
    for metric in METRICS:
        result = compare_runs(locate(base), locate(current), Settings(metric=metric))
        (row,) = result.rows
        verdicts[metric] = {"verdict": row.verdict, "ratio": row.ratio.value, "low": row.ratio.low, "high": row.ratio.high}
    return verdicts


def load() -> str:
    busy = BusyProbe()
    time.sleep(0.5)  # a short window for the CPU busy reading
    host = host_context(busy)
    return f"load {host.load_avg_start}, CPU {host.cpu_busy_percent_start:.0f}% busy, quiet={host.quiet}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--episodes", type=int, default=20, help="episodes per run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=20000, help="hash rounds per step of the baseline agent")
    parser.add_argument("--extra", type=float, default=0.2, help="extra work per step of the twin (0.2 = 20%%)")
    parser.add_argument("--output-dir", type=Path, help="keep the runs here (default: a temporary directory)")
    args = parser.parse_args()

    work = args.output_dir or Path(tempfile.mkdtemp(prefix="tracecore-perf-validity-"))
    work.mkdir(parents=True, exist_ok=True)
    heavy = round(args.rounds * (1 + args.extra))
    started = time.perf_counter()
    print(f"host at start: {load()} ({os.cpu_count()} logical cores); runs in {work}")
    tallies = {(kind, metric): 0 for kind in ("identical", "twin") for metric in METRICS}
    for pair in range(args.pairs):
        for kind, rounds in (("identical", args.rounds), ("twin", heavy)):
            # alternate which side runs first, so slow host drift does not favour one side
            names = [(f"{kind}{pair}-base", args.rounds), (f"{kind}{pair}-current", rounds)]
            order = names if pair % 2 == 0 else names[::-1]
            dirs = {name: run(work, name, r, args.episodes, args.workers) for name, r in order}
            verdicts = judge(dirs[names[0][0]], dirs[names[1][0]])
            wanted = "no change" if kind == "identical" else "slower"
            cells = []
            for metric in METRICS:
                v = verdicts[metric]
                tallies[(kind, metric)] += v["verdict"] == wanted
                cells.append(f"{metric} x{v['ratio']:.3f} [{v['low']:.3f}, {v['high']:.3f}] {v['verdict']}")
            print(f"pair {pair + 1:2} {kind:9}: " + " | ".join(cells), flush=True)
    print(f"host at end: {load()}; {time.perf_counter() - started:.0f} s in all")
    print(f"{'metric':13} identical: no change   twin (+{args.extra:.0%} work/step): slower")
    for metric in METRICS:
        print(f"{metric:13} {tallies[('identical', metric)]:>2}/{args.pairs}{'':17}{tallies[('twin', metric)]:>2}/{args.pairs}")
    ok = all(tallies[(kind, "cpu_s")] >= 0.9 * args.pairs for kind in ("identical", "twin"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
