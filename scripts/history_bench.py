"""History benchmark (not a test): what does ``history`` find on a sequence of real runs?

IDENTICAL runs of one agent at one path (``tests/agents/history_agent.py``, copied to a
temporary folder) beside the shipped toy agent, then CHANGED runs where the same file burns
``--extra-cpu-ms`` more CPU per step. Every run is a real ``python -m tracecore_perf`` run
that adds itself with ``--history``. Reported, with ``history``'s defaults:

- cried wolf: after each identical run from the fourth on, ``history check`` (cpu_s, as CI
  would run it) -- how many of those checks failed -- and how many change points ``history
  show`` finds on the identical runs, on every metric of both rows and the run-wide series;
- caught: the change points on the changed row's cpu_s after all runs, where they land and
  how large the change is, and any change point on the unchanged row's cpu_s.

    python scripts/history_bench.py                      # ~1 minute on the 2-core host
    python scripts/history_bench.py --identical 12 --changed 3 --extra-cpu-ms 2

Writes ``history-<stamp>.json`` and ``.md`` into ``deliverables/perf/bench/`` (``--out-dir``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tracecore_perf import defaults  # noqa: E402
from tracecore_perf.history import changes  # noqa: E402
from tracecore_perf.history.models import Settings  # noqa: E402
from tracecore_perf.history.store import open_store  # noqa: E402

TASK = "filesystem_hidden_config@1"
TOY = "agents/toy_agent.py"


def settings() -> Settings:
    h = defaults.HISTORY
    return Settings(pvalue=h["pvalue"], permutations=h["permutations"], min_change=h["min_change"], seed=h["seed"])


def analyse(db: Path, stamps: list[str], metrics: list[str]):
    with open_store(db, write=False) as store:
        runs = [r for r in store.runs() if r.stamp in stamps]
        groups = [g for g in store.groups() if g.stamp in stamps]
    return changes.history(str(db), runs, groups, metrics, settings())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--identical", type=int, default=10)
    parser.add_argument("--changed", type=int, default=3)
    parser.add_argument("--extra-cpu-ms", type=float, default=2.0, help="CPU burnt per step by the changed agent")
    parser.add_argument("--episodes", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out-dir", type=Path, default=REPO / "deliverables" / "perf" / "bench")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tracecore-perf-history-bench-"))
    agent = work / "agent_under_test.py"
    source = (REPO / "tests" / "agents" / "history_agent.py").read_text()
    agent.write_text(source)
    scenario = work / "scenario.json"
    rows = [{"agent": str(agent), "task_ref": TASK, "seed": 1}, {"agent": TOY, "task_ref": TASK, "seed": 2}]
    scenario.write_text(json.dumps(rows))
    db = work / "history.sqlite"
    load_start = os.getloadavg()
    started = datetime.now(timezone.utc)
    stamps: list[str] = []
    checks: list[dict] = []
    for i in range(args.identical + args.changed):
        if i == args.identical:
            agent.write_text(source.replace("EXTRA_CPU_MS = 0", f"EXTRA_CPU_MS = {args.extra_cpu_ms}"))
        done = subprocess.run(
            [sys.executable, "-m", "tracecore_perf", "--episodes", str(args.episodes), "--workers", str(args.workers)]
            + ["--scenario", str(scenario), "--output-dir", str(work / "out"), "--history", str(db), "--json", "--no-progress"],
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            sys.exit(f"run {i} failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
        stamps.append(json.loads(done.stdout)["stamp"])
        if i < args.identical and i >= changes.MIN_RUNS - 1:
            verdict = changes.check(analyse(db, stamps, ["cpu_s"]))
            checks.append({"runs": len(stamps), "ok": verdict.ok, "regressions": [cp.stamp for cp in verdict.regressions]})
        print(f"run {i + 1}/{args.identical + args.changed}: {stamps[-1]}", file=sys.stderr)

    identical = analyse(db, stamps[: args.identical], list(changes.METRICS))
    everything = analyse(db, stamps, ["cpu_s"])
    changed_row = [cp for cp in everything.change_points if cp.agent == str(agent)]
    unchanged_row = [cp for cp in everything.change_points if cp.agent == TOY]
    medians = {
        s.agent: [round(p.value * 1000, 2) for p in s.points if p.value is not None]
        for s in everything.series
        if s.metric == "cpu_s"
    }
    result = {
        "started": started.isoformat(timespec="seconds"),
        "load_avg_start": load_start,
        "load_avg_end": os.getloadavg(),
        "settings": {**defaults.HISTORY},
        "identical_runs": args.identical,
        "changed_runs": args.changed,
        "extra_cpu_ms_per_step": args.extra_cpu_ms,
        "episodes_per_run": args.episodes,
        "first_changed_stamp": stamps[args.identical],
        "cpu_s_medians_ms": {("changed row" if k == str(agent) else "unchanged row"): v for k, v in medians.items()},
        "checks_on_identical_runs": checks,
        "checks_failed_on_identical_runs": sum(not c["ok"] for c in checks),
        "series_on_identical_runs": len(identical.series),
        "change_points_on_identical_runs": [_cp(cp) for cp in identical.change_points],
        "changed_row_change_points": [_cp(cp) for cp in changed_row],
        "caught_on_first_changed_run": any(cp.stamp == stamps[args.identical] and cp.direction == "slower" for cp in changed_row),
        "unchanged_row_change_points": [_cp(cp) for cp in unchanged_row],
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    name = f"history-{started.strftime('%Y%m%dT%H%M%SZ')}"
    (args.out_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out_dir / f"{name}.md").write_text(markdown(result))
    print(markdown(result))
    return 0


def _cp(cp) -> dict:
    return {
        "stamp": cp.stamp,
        "metric": cp.metric,
        "agent": cp.agent,
        "direction": cp.direction,
        "before": cp.before,
        "after": cp.after,
        "ratio": cp.ratio,
    }


def markdown(r: dict) -> str:
    caught = r["changed_row_change_points"]
    size = ", ".join(f"x{cp['ratio']:.2f} from {cp['stamp']}" for cp in caught) or "none"
    lines = [
        f"# history benchmark {r['started']}",
        "",
        f"{r['identical_runs']} identical runs, then {r['changed_runs']} where the agent burns "
        f"{r['extra_cpu_ms_per_step']} ms more CPU per step; {r['episodes_per_run']} episodes per run (two rows); "
        f"load {r['load_avg_start'][0]:.2f} -> {r['load_avg_end'][0]:.2f}; settings {r['settings']}",
        "",
        "| question | answer |",
        "|---|---|",
        f"| `history check` (cpu_s) failed on identical runs | "
        f"{r['checks_failed_on_identical_runs']} of {len(r['checks_on_identical_runs'])} checks |",
        f"| change points on the identical runs (every metric, {r['series_on_identical_runs']} series) | "
        f"{len(r['change_points_on_identical_runs'])} |",
        f"| change caught on the changed row (cpu_s) | {size} |",
        f"| on the first changed run ({r['first_changed_stamp']}) | {'yes' if r['caught_on_first_changed_run'] else 'no'} |",
        f"| change points on the unchanged row (cpu_s, all runs) | {len(r['unchanged_row_change_points'])} |",
        "",
        f"cpu_s medians (ms): {json.dumps(r['cpu_s_medians_ms'])}",
        "",
    ]
    for cp in r["change_points_on_identical_runs"]:
        lines.append(f"- identical runs: {cp['metric']} of {cp['agent']} {cp['direction']} x{cp['ratio']} from {cp['stamp']}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
