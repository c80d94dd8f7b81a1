"""What ``--sandbox`` costs per episode, side by side in one run on this host.

Runs the everyday slice's scenario (``--episodes N``, 2 workers) with and without
``--sandbox``, alternating, ``--pairs`` times each, every run a real ``python -m
tracecore_perf`` subprocess. Per mode it prints the median over runs of the median per
episode of the episode process tree's CPU time (the rows' ``cpu_user_s + cpu_sys_s``, which
for a sandboxed episode includes the waiting process and the namespace's init) and of its
wall time, then the difference per episode and the ratio.

    python scripts/sandbox_cost.py              # 5 pairs of 96 episodes, about a minute
    python scripts/sandbox_cost.py --burn       # the same while a CPU burner keeps one core busy
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run(out: Path, episodes: int, sandbox: bool) -> tuple[float, float]:
    """One run into ``out``: the median per-episode tree CPU and wall time, in ms."""
    command = [sys.executable, "-m", "tracecore_perf", "--episodes", str(episodes), "--workers", "2"]
    command += ["--no-progress", "--json", "--output-dir", str(out)] + (["--sandbox"] if sandbox else [])
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"sandbox_cost: a run exited {done.returncode}: {done.stderr.strip().splitlines()[-1:]}")
    (series,) = out.glob("perf-series-*.json")
    rows = json.loads(series.read_text())
    cpu = statistics.median(row["cpu_user_s"] + row["cpu_sys_s"] for row in rows)
    wall = statistics.median(row["wall_clock_s"] for row in rows)
    return cpu * 1000, wall * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5, help="runs of each mode (default 5)")
    parser.add_argument("--episodes", type=int, default=96, help="episodes per run (default 96)")
    parser.add_argument("--burn", action="store_true", help="keep one core busy with a CPU burner throughout")
    args = parser.parse_args()
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.burn else None
    figures: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    try:
        with tempfile.TemporaryDirectory(prefix="tracecore-perf-sandbox-cost-") as tmp:
            for pair in range(args.pairs):
                for sandbox in (False, True) if pair % 2 == 0 else (True, False):
                    cpu, wall = run(Path(tmp) / f"{pair}-{int(sandbox)}", args.episodes, sandbox)
                    figures[sandbox].append((cpu, wall))
                    print(
                        f"pair {pair + 1}: {'sandbox' if sandbox else 'plain':8} cpu {cpu:6.2f} ms  wall {wall:6.2f} ms",
                        flush=True,
                    )
    finally:
        if burner is not None:
            burner.kill()
            burner.wait()
    print(f"per episode, median of {args.pairs} runs of {args.episodes} episodes each:")
    for label, index in (("tree CPU", 0), ("wall", 1)):
        plain = statistics.median(f[index] for f in figures[False])
        boxed = statistics.median(f[index] for f in figures[True])
        print(f"  {label:8}  plain {plain:6.2f} ms  sandbox {boxed:6.2f} ms  +{boxed - plain:5.2f} ms  x{boxed / plain:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
