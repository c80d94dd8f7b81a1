"""The harness's own cost per episode, in instructions (Valgrind's callgrind), side by side with
TraceCore's: figures the host's load cannot move.

For each row of the default scenario, with the seeds a harness run gives that row:

  (a) TraceCore alone: ``run()`` + ``persist_run()`` in a child forked from a warmed process
      (``scripts/inprocess_instructions.py --persist``): what TraceCore itself does per episode;
  (b) this harness's episode process (``--instructions``, forkserver): the row's median;

and for the run as a whole:

  (c) the workers and the harness process per episode. Workers: callgrind counts each from its
      fork off the zygote to its exit (the run's summary, ``resources.workers_instructions``).
      The harness: the whole ``python -m tracecore_perf`` process under callgrind
      (``--trace-children=no``: the episodes run natively). Each at two run sizes: the
      difference divided by the extra episodes is the cost of one more episode (start-up and
      publishing cancel out), beside the total divided by the episodes of the larger run.

    python scripts/episode_cost.py [--episodes-per-row N] [--workers W] [--out-dir DIR] [--json]

Writes ``cost-<stamp>.json`` and ``.md`` into ``deliverables/perf/bench/`` (``--out-dir``), and
is also a section of ``scripts/bench.py`` (``--cost``). Targets: (b) <= 1.05 x (a) on every row,
the episode process doing TraceCore's work and little else; and (c), workers and harness
together for one more episode, at most half of this benchmark's first figure
(``cost-20261205T044323Z.json``, before the workers' cuts; instruction counts do not move with
the host, so the file stands as the reference). Exit 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the scenario and the callgrind reader are the harness's own
TARGET_EPISODE_VS_TRACECORE = 1.05
# (c) workers + harness per extra episode, against the first run of this benchmark
OWN_REFERENCE = REPO / "deliverables" / "perf" / "bench" / "cost-20261205T044323Z.json"
TARGET_OWN_VS_REFERENCE = 0.5

from tracecore_perf.run.episode.callgrind import callgrind_count  # noqa: E402 - after the path


def _default_rows() -> list[dict]:
    from tracecore_perf.run.scenario import DEFAULT_SCENARIO

    return [{"agent": r.agent, "task_ref": r.task_ref, "seed": r.seed} for r in DEFAULT_SCENARIO]


def tracecore_alone(row: dict, number: int, rows: int, per_row: int, python: str) -> int:
    """(a): the median of ``run()`` + ``persist_run()`` over the row's seeds in a harness run
    (row r of R rows gets seed + r + R k)."""
    done = subprocess.run(
        [python, str(REPO / "scripts" / "inprocess_instructions.py"), "--agent", row["agent"], "--task", row["task_ref"],
         "--first-seed", str(row["seed"] + number), "--seed-step", str(rows), "--episodes", str(per_row), "--persist",
         "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"inprocess_instructions.py failed for {row['agent']}: {done.stderr.strip()[-300:]}")
    return json.loads(done.stdout)["median"]


def harness_run(python: str, episodes: int, workers: int, work: Path, *, under_callgrind: bool) -> dict:
    """One run of the slice's shape: ``--instructions`` (episodes and workers counted), or the
    harness process itself under callgrind with its episodes native. Returns the summary and,
    under callgrind, the harness's own count."""
    out = work / f"out-{episodes}-{'harness' if under_callgrind else 'counted'}"
    command = [python, "-m", "tracecore_perf", "--episodes", str(episodes), "--workers", str(workers), "--strict-spec",
               "--no-progress", "--output-dir", str(out), "--json"]  # fmt: skip
    counts = work / f"callgrind-{episodes}"
    if under_callgrind:
        counts.mkdir()
        command = ["valgrind", "-q", "--tool=callgrind", "--trace-children=no",
                   f"--callgrind-out-file={counts}/callgrind.out.%p", *command]  # fmt: skip
    else:
        command.append("--instructions")
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False, env=_with_bytecode(work))
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:6])}... exited {done.returncode}: {done.stderr.strip()[-400:]}")
    found = {"summary": json.loads(done.stdout)["summary"]}
    if under_callgrind:
        (path,) = counts.glob("callgrind.out.*")
        found["harness_instructions"] = callgrind_count(str(path))
    return found


def _with_bytecode(work: Path) -> dict:
    """The environment with the harness's modules read from bytecode, as an installed harness
    reads them: a shell that sets PYTHONDONTWRITEBYTECODE would have the harness compile its
    own modules in every run (~300 M instructions of the harness process's fixed part). The
    bytecode goes to a scratch folder, not into the checkout."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    return env


def measure(python: str = sys.executable, per_row: int = 6, workers: int = 4, say=print) -> dict:
    reference = json.loads(OWN_REFERENCE.read_text())["own"]["both"]["marginal"]
    rows = _default_rows()
    small, large = per_row * len(rows), 2 * per_row * len(rows)
    work = Path(tempfile.mkdtemp(prefix="tracecore-cost-"))
    try:
        subprocess.run([python, "-m", "compileall", "-q", str(REPO / "tracecore_perf")], env=_with_bytecode(work), check=True)
        say(f"[cost] (b) and workers: --instructions runs of {small} and {large} episodes")
        counted = {n: harness_run(python, n, workers, work, under_callgrind=False) for n in (small, large)}
        say(f"[cost] (c) the harness process under callgrind: runs of {small} and {large} episodes")
        harness = {n: harness_run(python, n, workers, work, under_callgrind=True) for n in (small, large)}
        table = []
        for number, row in enumerate(rows):
            say(f"[cost] (a) TraceCore alone: {row['agent']} on {row['task_ref']}")
            alone = tracecore_alone(row, number, len(rows), per_row, python)
            medians = {(r["agent"], r["task_ref"]): r["median"] for r in counted[small]["summary"]["instructions"]}
            episode = medians[(row["agent"], row["task_ref"])]
            table.append({"row": f"{row['agent']} on {row['task_ref']}", "tracecore": alone, "episode": episode,
                          "ratio": round(episode / alone, 4)})  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def per_episode(totals: dict[int, int]) -> dict:
        return {"marginal": round((totals[large] - totals[small]) / (large - small)), "average": round(totals[large] / large)}

    workers_totals = {n: counted[n]["summary"]["resources"]["workers_instructions"] for n in (small, large)}
    harness_totals = {n: harness[n]["harness_instructions"] for n in (small, large)}
    own = {"workers": per_episode(workers_totals), "harness": per_episode(harness_totals)}
    own["both"] = {k: own["workers"][k] + own["harness"][k] for k in ("marginal", "average")}
    own_ratio = round(own["both"]["marginal"] / reference, 4)
    return {
        "episodes": [small, large],
        "workers": workers,
        "rows": table,
        "own": own,
        "totals": {"workers": workers_totals, "harness": harness_totals},
        "episode_within_target": all(r["ratio"] <= TARGET_EPISODE_VS_TRACECORE for r in table),
        "own_against_reference": {
            "reference": reference,
            "file": OWN_REFERENCE.name,
            "ratio": own_ratio,
            "within_target": own_ratio <= TARGET_OWN_VS_REFERENCE,
        },
    }


def markdown(found: dict) -> str:
    m = lambda n: f"{n / 1e6:,.2f} M"  # noqa: E731
    lines = [
        f"Instructions per episode (callgrind; runs of {found['episodes'][0]} and {found['episodes'][1]} episodes, "
        f"{found['workers']} workers, forkserver, --strict-spec)",
        "",
        "| scenario row | (a) TraceCore: run() + persist_run() | (b) episode process | (b) / (a) |",
        "|---|---|---|---|",
    ]
    for r in found["rows"]:
        mark = "" if r["ratio"] <= TARGET_EPISODE_VS_TRACECORE else " (over 1.05)"
        lines.append(f"| {r['row']} | {m(r['tracecore'])} | {m(r['episode'])} | {r['ratio']:.3f}{mark} |")
    own = found["own"]
    lines += [
        "",
        "| (c) the harness's own, per episode | one more episode | whole run / episodes |",
        "|---|---|---|",
        f"| workers | {m(own['workers']['marginal'])} | {m(own['workers']['average'])} |",
        f"| harness process | {m(own['harness']['marginal'])} | {m(own['harness']['average'])} |",
        f"| both | {m(own['both']['marginal'])} | {m(own['both']['average'])} |",
    ]
    ref = found.get("own_against_reference")
    if ref:
        verdict = "met" if ref["within_target"] else "MISSED"
        lines += [
            "",
            f"Workers + harness for one more episode: {m(own['both']['marginal'])} against {m(ref['reference'])} "
            f"in {ref['file']}: {ref['ratio']:.3f}x (target <= {TARGET_OWN_VS_REFERENCE}x: {verdict}).",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes-per-row", type=int, default=6, help="episodes of each row in the smaller run (default 6)")
    parser.add_argument("--workers", type=int, default=4, help="workers (default 4, as the slice)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter (default this one)")
    parser.add_argument("--out-dir", type=Path, default=REPO / "deliverables" / "perf" / "bench")
    parser.add_argument("--json", action="store_true", help="print the JSON instead of the table")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not on PATH (apt-get install valgrind)")
    if args.episodes_per_row < 6 or args.workers < 1:
        parser.error("--episodes-per-row must be at least 6 (a median of fewer says little), --workers at least 1")
    found = measure(args.python, args.episodes_per_row, args.workers, say=lambda line: print(line, file=sys.stderr))
    found["stamp"] = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"cost-{found['stamp']}.json").write_text(json.dumps(found, indent=2) + "\n")
    text = markdown(found)
    (args.out_dir / f"cost-{found['stamp']}.md").write_text(text)
    print(json.dumps(found, indent=2) if args.json else text)
    return 0 if found["episode_within_target"] and found["own_against_reference"]["within_target"] else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
