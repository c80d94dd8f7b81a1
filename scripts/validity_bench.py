"""Measurement validity benchmark (not a test): can ``compare`` be trusted on this host?

1. Identical code: PAIRS pairs of runs of the same agent (tests/agents/busy_agent.py at one
   path) doing the same work; ``compare`` should call no regression on at least 9 of 10.
2. A twin doing a little more work per step: PAIRS pairs where the current run's agent (the
   same file, the same scenario row) does ``--extra-rounds`` more rounds of a hash chain per
   step (BUSY_AGENT_ROUNDS); ``compare`` should call a regression on at least 9 of 10.

Time (``--metric`` wall_clock_s, episode_s, cpu_s): the twin's default 5,000 rounds are
~1.5 ms of CPU per step on a quiet host of the benchmark class (~3,300 rounds/ms; the host's
rate now is printed at the start, as a check that "quiet" holds). Every run is a real
``python -m tracecore_perf`` run with default flags apart from the scenario (one row) and
``--episodes`` (120).

Instructions (``--metric instructions``): every run is made with ``--instructions``, so each
episode's user-space instructions are counted under Valgrind (callgrind), from its fork off
the warmed zygote to its exit, and ``compare`` pairs the episodes of the two runs by seed.
Counts do not drift with the host, so 12 episodes per run and 1 worker are the defaults
(the episodes one at a time: with ``--burn`` the run has the core the burner leaves). The
twin's default is 18 rounds, ~+1% instructions per episode: one round per step adds ~23,160
instructions per episode (busy_agent on filesystem_hidden_config@1, seeds 1-12, 1 worker,
medians at 0 and 2,000 rounds: 41.21 M and 87.52 M; the agent's own work, the same 23,110
with a harness whose base episode was 49.93 M). The base episode moves with the harness's
cost per episode (37.68 M when last measured), so each pair's line prints the ratio
measured. Measured on the 2-core benchmark host with the other core busy (``--burn --noise
0.002 --margin 0.005 --pairs 5``): 5/5 and 5/5, identical pairs within 0.032% of each
other, twins +1.08% to +1.10%; a 12-episode instruction run took 13 s, the same run
native 0.45 s. Counts move when a source file on an episode's stack (the harness's,
TraceCore's) is edited, even touched, during a run, and between runs with the code: keep
the tree still while measuring. The time metrics of instruction runs are judged too, for
reference, marked "(valgrind)": Valgrind inflates them.

Each pair is judged with ``compare``'s defaults for the judged metric (or the compare flags
given here), and for reference on every other metric ``compare`` allows between the two
runs (the compare flags given apply to the metrics of the judged metric's kind, time or
instructions; the other kind keeps its defaults). The sides of a pair alternate which runs
first. The host's load is printed at the start and the end: on a shared machine time rates
are only as good as the host is quiet. ``--burn`` keeps one core busy with a CPU burner
from before the first run to the end: instruction counts should not care.

    python scripts/validity_bench.py --output-dir /tmp/validity            # measure (minutes)
    python scripts/validity_bench.py --judge /tmp/validity --drift 0.08    # re-judge kept runs
    python scripts/validity_bench.py --metric instructions --noise 0.002 --margin 0.005 --pairs 5 --burn

Exit 0 when both rates reach 90% on the judged metric, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tracecore_perf.errors import UsageError  # noqa: E402
from tracecore_perf.published import locate  # noqa: E402
from tracecore_perf.run.hostinfo import BusyProbe, host_context  # noqa: E402
from tracecore_perf.verdicts.compare import DEFAULTS, METRICS, TIME_METRICS, Settings, compare_runs  # noqa: E402

AGENT = REPO / "tests" / "agents" / "busy_agent.py"
TASK = "filesystem_hidden_config@1"
KINDS = ("identical", "twin")
QUIET_ROUNDS_PER_MS = 3300  # the hash chain's speed on a quiet host of the benchmark class (best of five)
ROUND_INSTRUCTIONS = 23_160  # what one more hash round per step adds to an episode (measured: the docstring)
# per metric: episodes per run, --workers (None: the harness's default), twin's extra rounds
RUN_DEFAULTS = {"time": (120, None, 5000), "instructions": (12, 1, 18)}
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


@contextlib.contextmanager
def burning(on: bool) -> Iterator[int | None]:
    """With ``on``, one core kept busy by a CPU burner subprocess until the block ends,
    however it ends (an error, Ctrl-C); yields its pid."""
    if not on:
        yield None
        return
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield burner.pid
    finally:
        burner.kill()
        burner.wait()


def run(work: Path, name: str, rounds: int, episodes: int, workers: int | None, instructions: bool) -> Path:
    out = work / name
    scenario = work / "scenario.json"
    if not scenario.exists():
        scenario.write_text(json.dumps([{"agent": str(AGENT), "task_ref": TASK, "seed": 1}]))
    flags = ["--episodes", str(episodes)] + (["--workers", str(workers)] if workers else [])
    flags += ["--instructions"] if instructions else []
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


def settings_for(metric: str, given: Settings) -> Settings:
    """``given``'s flags for the metrics of the judged metric's kind (time or instructions);
    the other kind's metrics keep ``compare``'s defaults for them."""
    if (metric in TIME_METRICS) == (given.metric in TIME_METRICS):
        return Settings(metric=metric, alpha=given.alpha, noise=given.noise, margin=given.margin, drift=given.drift)
    return Settings(metric=metric)


def judge(base: Path, current: Path, settings: Settings) -> dict[str, dict]:
    """The pair on the judged metric, then on every other metric ``compare`` allows between
    the two runs (it refuses time between an instruction run and a native one, and
    instructions unless both runs counted them)."""
    verdicts = {}
    for metric in [settings.metric] + [m for m in METRICS if m != settings.metric]:
        try:
            (row,) = compare_runs(locate(base), locate(current), settings_for(metric, settings)).rows
        except UsageError:
            if metric == settings.metric:
                raise
            continue
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


def label(metric: str, verdicts: dict[str, dict]) -> str:
    """The metric's name; a time metric of instruction runs is marked: Valgrind inflates it."""
    return f"{metric} (valgrind)" if metric in TIME_METRICS and "instructions" in verdicts else metric


def pair_line(pair: int, kind: str, verdicts: dict[str, dict]) -> str:
    cells = []
    for metric, v in verdicts.items():
        mark = "REGRESSION" if v["regression"] else v["verdict"]
        if metric == "instructions":  # a change of a fraction of a per cent: the per cent is the figure
            figure = f"x{v['ratio']:.5f} ({(v['ratio'] - 1) * 100:+.3f}%) [{v['low']:.5f}, {v['high']:.5f}]"
        else:
            figure = f"x{v['ratio']:.3f} [{v['low']:.3f}, {v['high']:.3f}]"
        cells.append(f"{label(metric, verdicts)} {figure} {mark}")
    return f"pair {pair + 1:2} {kind:9}: " + " | ".join(cells)


def tally(results: list[dict], judged: str, pairs: int) -> tuple[list[str], bool]:
    first = results[0]["verdicts"]
    width = max(len(label(metric, first)) for metric in first)
    lines = [f"{'metric':{width}} identical: no regression (no change)   twin: regression (slower)"]
    ok = True
    for metric in first:
        counts = {}
        for kind in KINDS:
            mine = [r["verdicts"][metric] for r in results if r["kind"] == kind]
            plain = "no change" if kind == "identical" else "slower"
            counts[kind] = (sum(hit(kind, v) for v in mine), sum(v["verdict"] == plain for v in mine))
        mark = "  <- compare's setting" if metric == judged else ""
        lines.append(
            f"{label(metric, first):{width}} {counts['identical'][0]:>2}/{pairs} ({counts['identical'][1]:>2}/{pairs}){'':20}"
            f"{counts['twin'][0]:>2}/{pairs} ({counts['twin'][1]:>2}/{pairs}){mark}"
        )
        if metric == judged:
            ok = all(counts[kind][0] >= 0.9 * pairs for kind in KINDS)
    identical = [r["verdicts"][judged]["ratio"] for r in results if r["kind"] == "identical"]
    twins = [r["verdicts"][judged]["ratio"] for r in results if r["kind"] == "twin"]
    if identical and twins:
        lines.append(
            f"{judged}: identical pairs within {max(abs(x - 1) for x in identical) * 100:.3f}% (largest |ratio - 1|); "
            f"twins {(min(twins) - 1) * 100:+.3f}% to {(max(twins) - 1) * 100:+.3f}%"
        )
    return lines, ok


def rejudge(directory: Path, settings: Settings) -> int:
    results: list[dict] = []
    names = sorted({p.name for p in directory.iterdir() if re.fullmatch(r"(identical|twin)\d+-(base|current)", p.name)})
    found = sorted({(n.split("-")[0].rstrip("0123456789"), int(re.sub(r"\D", "", n.split("-")[0]))) for n in names})
    for kind, pair in found:
        base, current = (next((directory / f"{kind}{pair}-{s}").glob("run-*")) for s in ("base", "current"))
        results.append({"pair": pair, "kind": kind, "verdicts": judge(base, current, settings)})
        print(pair_line(pair, kind, results[-1]["verdicts"]), flush=True)
    pairs = max(sum(r["kind"] == kind for r in results) for kind in KINDS)
    used = settings.resolved()
    print(
        f"re-judged {len(results)} pairs in {directory} on {used.metric} with alpha {used.alpha}, noise {used.noise}, "
        f"margin {used.margin}, drift {used.drift}"
    )
    lines, ok = tally(results, settings.metric, pairs)
    print("\n".join(lines))
    return 0 if ok else 1


def measure(args: argparse.Namespace, settings: Settings, work: Path, burner: int | None) -> int:
    instructions = args.metric == "instructions"
    per_ms = rounds_per_ms()
    extra = args.extra_rounds
    heavy = args.base_rounds + extra
    started = time.perf_counter()
    host_start = load()
    print(
        f"host at start: load {host_start['load_avg']}, CPU {host_start['cpu_busy_percent']}% busy, quiet={host_start['quiet']} "
        f"({os.cpu_count()} logical cores); runs in {work}"
    )
    if burner is not None:
        print(f"burner: one core kept busy by `{Path(sys.executable).name} -c 'while True: pass'` (pid {burner}) until the end")
    if instructions:
        cost = f"~{extra * ROUND_INSTRUCTIONS:,} more instructions per episode: {ROUND_INSTRUCTIONS:,} per round, measured"
    else:
        cost = (
            f"~{extra / QUIET_ROUNDS_PER_MS:.2f} ms on a quiet host; this host does {per_ms:,.0f} rounds/ms now, "
            f"{extra / per_ms:.2f} ms"
        )
    print(
        f"twin: +{extra} hash rounds per step ({cost}) over {args.base_rounds}; {args.pairs} pairs of each kind, "
        f"{args.episodes} episodes per run, workers {args.workers or 'default'}"
        + (", under Valgrind (--instructions)" if instructions else "")
    )
    results: list[dict] = []
    for pair in range(args.pairs):
        for kind in KINDS:
            rounds = args.base_rounds if kind == "identical" else heavy
            # alternate which side runs first, so slow host drift does not favour one side
            names = [(f"{kind}{pair}-base", args.base_rounds), (f"{kind}{pair}-current", rounds)]
            order = names if pair % 2 == 0 else names[::-1]
            dirs = {name: run(work, name, r, args.episodes, args.workers, instructions) for name, r in order}
            verdicts = judge(dirs[names[0][0]], dirs[names[1][0]], settings)
            results.append({"pair": pair, "kind": kind, "verdicts": verdicts, "load_1m": os.getloadavg()[0]})
            print(pair_line(pair, kind, verdicts), flush=True)
    host_end = load()
    seconds = time.perf_counter() - started
    print(
        f"host at end: load {host_end['load_avg']}, CPU {host_end['cpu_busy_percent']}% busy, quiet={host_end['quiet']}; "
        f"{seconds:.0f} s in all"
    )
    lines, ok = tally(results, args.metric, args.pairs)
    print("\n".join(lines))
    record = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": vars(settings.resolved()),
        "pairs": args.pairs,
        "episodes": args.episodes,
        "workers": args.workers,
        "instructions": instructions,
        "burn": burner is not None,
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10, help="pairs of each kind (default 10)")
    parser.add_argument("--episodes", type=int, help="episodes per run (default 120; 12 with --metric instructions)")
    parser.add_argument(
        "--workers", type=int, help="--workers of every run (default: the harness's default; 1 with --metric instructions)"
    )
    parser.add_argument("--base-rounds", type=int, default=0, help="hash rounds per step of the baseline agent (default 0)")
    parser.add_argument(
        "--extra-rounds",
        type=int,
        help="extra hash rounds per step of the twin (default 5000, ~1.5 ms; 18, ~+1%% instructions, with --metric instructions)",
    )
    parser.add_argument("--burn", action="store_true", help="keep one core busy with a CPU burner for the whole measurement")
    parser.add_argument("--output-dir", type=Path, help="keep the runs here (default: a temporary directory)")
    parser.add_argument("--judge", type=Path, metavar="DIR", help="re-judge the runs kept in DIR instead of running")
    parser.add_argument("--metric", choices=sorted(METRICS), default=DEFAULTS["metric"])
    for flag in ("alpha", "noise", "margin", "drift"):
        parser.add_argument(f"--{flag}", type=float, help="compare's flag (default: compare's default for the metric)")
    args = parser.parse_args()
    settings = Settings(metric=args.metric, alpha=args.alpha, noise=args.noise, margin=args.margin, drift=args.drift)
    if args.judge:
        return rejudge(args.judge, settings)

    episodes, workers, extra = RUN_DEFAULTS["instructions" if args.metric == "instructions" else "time"]
    args.episodes = args.episodes or episodes
    args.workers = args.workers or workers
    args.extra_rounds = args.extra_rounds if args.extra_rounds is not None else extra
    work = args.output_dir or Path(tempfile.mkdtemp(prefix="tracecore-perf-validity-"))
    work.mkdir(parents=True, exist_ok=True)
    with burning(args.burn) as burner:
        return measure(args, settings, work, burner)


if __name__ == "__main__":
    raise SystemExit(main())
