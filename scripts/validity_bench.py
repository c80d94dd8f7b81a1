"""Measurement validity benchmark (not a test): can ``compare`` be trusted on this host?

1. Identical code: PAIRS pairs of runs of the same agent (tests/agents/busy_agent.py at one
   path) doing the same work; ``compare`` should call no regression on at least 9 of 10.
2. A twin doing ~1.5 ms more work per step: PAIRS pairs where the current run's agent (the
   same file, the same scenario row) does ``--extra-rounds`` more rounds of a hash chain per
   step (BUSY_AGENT_ROUNDS); the default 5,000 rounds are ~1.5 ms of CPU on a quiet host of
   the benchmark class (~3,300 rounds/ms; the host's rate now is printed at the start, as a
   check that "quiet" holds); ``compare`` should call a regression on at least 9 of 10.

Every run is a real ``python -m tracecore_perf`` run with default flags apart from the
scenario (one row) and ``--episodes`` (120). Each pair is judged with ``compare``'s defaults
(or the compare flags given here), and for reference on every other metric too. The sides of
a pair alternate which runs first. The host's load is printed at the start and the end: on a
shared machine the rates are only as good as the host is quiet.

    python scripts/validity_bench.py --output-dir /tmp/validity            # measure (minutes)
    python scripts/validity_bench.py --judge /tmp/validity --drift 0.08    # re-judge kept runs

Exit 0 when both rates reach 90% on the judged metric, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tracecore_perf.published import locate  # noqa: E402
from tracecore_perf.run.hostinfo import BusyProbe, host_context  # noqa: E402
from tracecore_perf.verdicts.compare import DEFAULTS, METRICS, Settings, compare_runs  # noqa: E402

AGENT = REPO / "tests" / "agents" / "busy_agent.py"
TASK = "filesystem_hidden_config@1"
KINDS = ("identical", "twin")
QUIET_ROUNDS_PER_MS = 3300  # the hash chain's speed on a quiet host of the benchmark class (best of five)
WANTED = {"identical": "no regression", "twin": "regression"}


def rounds_per_ms() -> float:
    """Hash rounds of the busy agent per millisecond on this host (best of five: the speed of
    the machine, not of its neighbours)."""
    best = float("inf")
    for _ in range(5):
        digest, started = b"tracecore", time.perf_counter()
        for _ in range(20000):
            digest = hashlib.sha256(digest).digest()
        best = min(best, time.perf_counter() - started)
    return 20000 / (best * 1000)


def run(work: Path, name: str, rounds: int, episodes: int, workers: int | None) -> Path:
    out = work / name
    scenario = work / "scenario.json"
    if not scenario.exists():
        scenario.write_text(json.dumps([{"agent": str(AGENT), "task_ref": TASK, "seed": 1}]))
    flags = ["--episodes", str(episodes)] + (["--workers", str(workers)] if workers else [])
    done = subprocess.run(
        [sys.executable, "-m", "tracecore_perf", *flags]
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


def judge(base: Path, current: Path, settings: Settings) -> dict[str, dict]:
    """The pair on every metric, with ``settings`` apart from the metric."""
    verdicts = {}
    for metric in METRICS:
        varied = Settings(metric=metric, alpha=settings.alpha, noise=settings.noise, margin=settings.margin, drift=settings.drift)
        (row,) = compare_runs(locate(base), locate(current), varied).rows
        verdicts[metric] = {
            "verdict": row.verdict,
            "regression": row.regression,
            "ratio": row.ratio.value,
            "low": row.ratio.low,
            "high": row.ratio.high,
            "p": row.p_adjusted,
            "drift_within": row.drift_within,
        }
    return verdicts


def load() -> dict:
    busy = BusyProbe()
    time.sleep(0.5)  # a short window for the CPU busy reading
    host = host_context(busy)
    return {"load_avg": host.load_avg_start, "cpu_busy_percent": round(host.cpu_busy_percent_start, 1), "quiet": host.quiet}


def hit(kind: str, verdict: dict) -> bool:
    return verdict["regression"] if kind == "twin" else not verdict["regression"]


def pair_line(pair: int, kind: str, verdicts: dict[str, dict], metrics: list[str]) -> str:
    cells = []
    for metric in metrics:
        v = verdicts[metric]
        mark = "REGRESSION" if v["regression"] else v["verdict"]
        cells.append(f"{metric} x{v['ratio']:.3f} [{v['low']:.3f}, {v['high']:.3f}] {mark}")
    return f"pair {pair + 1:2} {kind:9}: " + " | ".join(cells)


def tally(results: list[dict], metrics: list[str], judged: str, pairs: int) -> tuple[list[str], bool]:
    lines = [f"{'metric':13} identical: no regression (no change)   twin: regression (slower)"]
    ok = True
    for metric in metrics:
        counts = {}
        for kind in KINDS:
            mine = [r["verdicts"][metric] for r in results if r["kind"] == kind]
            plain = "no change" if kind == "identical" else "slower"
            counts[kind] = (sum(hit(kind, v) for v in mine), sum(v["verdict"] == plain for v in mine))
        mark = "  <- compare's setting" if metric == judged else ""
        lines.append(
            f"{metric:13} {counts['identical'][0]:>2}/{pairs} ({counts['identical'][1]:>2}/{pairs}){'':20}"
            f"{counts['twin'][0]:>2}/{pairs} ({counts['twin'][1]:>2}/{pairs}){mark}"
        )
        if metric == judged:
            ok = all(counts[kind][0] >= 0.9 * pairs for kind in KINDS)
    return lines, ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10, help="pairs of each kind (default 10)")
    parser.add_argument("--episodes", type=int, default=120, help="episodes per run (default 120)")
    parser.add_argument("--workers", type=int, help="--workers of every run (default: the harness's default)")
    parser.add_argument("--base-rounds", type=int, default=0, help="hash rounds per step of the baseline agent (default 0)")
    parser.add_argument(
        "--extra-rounds", type=int, default=5000, help="extra hash rounds per step of the twin (default 5000, ~1.5 ms)"
    )
    parser.add_argument("--output-dir", type=Path, help="keep the runs here (default: a temporary directory)")
    parser.add_argument("--judge", type=Path, metavar="DIR", help="re-judge the runs kept in DIR instead of running")
    parser.add_argument("--metric", choices=sorted(METRICS), default=DEFAULTS["metric"])
    for flag in ("alpha", "noise", "margin", "drift"):
        parser.add_argument(f"--{flag}", type=float, default=DEFAULTS[flag])
    args = parser.parse_args()
    settings = Settings(metric=args.metric, alpha=args.alpha, noise=args.noise, margin=args.margin, drift=args.drift)
    metrics = [args.metric] + [m for m in METRICS if m != args.metric]

    results: list[dict] = []
    if args.judge:
        names = sorted({p.name for p in args.judge.iterdir() if re.fullmatch(r"(identical|twin)\d+-(base|current)", p.name)})
        found = sorted({(n.split("-")[0].rstrip("0123456789"), int(re.sub(r"\D", "", n.split("-")[0]))) for n in names})
        for kind, pair in found:
            base, current = (next((args.judge / f"{kind}{pair}-{s}").glob("run-*")) for s in ("base", "current"))
            results.append({"pair": pair, "kind": kind, "verdicts": judge(base, current, settings)})
            print(pair_line(pair, kind, results[-1]["verdicts"], metrics), flush=True)
        pairs = max(sum(r["kind"] == kind for r in results) for kind in KINDS)
        print(f"re-judged {len(results)} pairs in {args.judge} with alpha {args.alpha}, noise {args.noise}, "
              f"margin {args.margin}, drift {args.drift}")
        lines, ok = tally(results, metrics, args.metric, pairs)
        print("\n".join(lines))
        return 0 if ok else 1

    work = args.output_dir or Path(tempfile.mkdtemp(prefix="tracecore-perf-validity-"))
    work.mkdir(parents=True, exist_ok=True)
    per_ms = rounds_per_ms()
    extra = args.extra_rounds
    heavy = args.base_rounds + extra
    started = time.perf_counter()
    host_start = load()
    print(
        f"host at start: load {host_start['load_avg']}, CPU {host_start['cpu_busy_percent']}% busy, quiet={host_start['quiet']} "
        f"({os.cpu_count()} logical cores); runs in {work}"
    )
    print(
        f"twin: +{extra} hash rounds per step (~{extra / QUIET_ROUNDS_PER_MS:.2f} ms on a quiet host; this host does "
        f"{per_ms:,.0f} rounds/ms now, {extra / per_ms:.2f} ms) over {args.base_rounds}; "
        f"{args.pairs} pairs of each kind, {args.episodes} episodes per run"
    )
    for pair in range(args.pairs):
        for kind in KINDS:
            rounds = args.base_rounds if kind == "identical" else heavy
            # alternate which side runs first, so slow host drift does not favour one side
            names = [(f"{kind}{pair}-base", args.base_rounds), (f"{kind}{pair}-current", rounds)]
            order = names if pair % 2 == 0 else names[::-1]
            dirs = {name: run(work, name, r, args.episodes, args.workers) for name, r in order}
            verdicts = judge(dirs[names[0][0]], dirs[names[1][0]], settings)
            results.append({"pair": pair, "kind": kind, "verdicts": verdicts, "load_1m": os.getloadavg()[0]})
            print(pair_line(pair, kind, verdicts, metrics), flush=True)
    host_end = load()
    seconds = time.perf_counter() - started
    print(
        f"host at end: load {host_end['load_avg']}, CPU {host_end['cpu_busy_percent']}% busy, quiet={host_end['quiet']}; "
        f"{seconds:.0f} s in all"
    )
    lines, ok = tally(results, metrics, args.metric, args.pairs)
    print("\n".join(lines))
    record = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": vars(settings),
        "pairs": args.pairs,
        "episodes": args.episodes,
        "base_rounds": args.base_rounds,
        "extra_rounds": extra,
        "rounds_per_ms": round(per_ms, 1),
        "host_start": host_start,
        "host_end": host_end,
        "seconds": round(seconds, 1),
        "results": results,
        "tally": lines,
    }
    (work / "validity.json").write_text(json.dumps(record, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
