"""What instruction mode costs and how precise it is, side by side in one run on this host.

Runs the everyday slice (24 episodes, 4 workers, --strict-spec) natively and with
--instructions, alternating, ``--pairs`` times each, every run a real ``python -m
tracecore_perf`` subprocess timed from start to exit. Prints each mode's median wall time
and their ratio, then how far apart the instruction runs land: per scenario row, the
largest relative difference between any two runs' median instructions per episode.

    python scripts/instruction_cost.py            # 3 pairs, a few minutes
    python scripts/instruction_cost.py --burn     # the same while a CPU burner keeps one core busy
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SLICE = ["--episodes", "24", "--workers", "4", "--strict-spec", "--no-progress", "--json"]


def timed_run(out: Path, counted: bool) -> tuple[float, dict]:
    """One slice into ``out``: its wall time from process start to exit, and its summary."""
    command = [sys.executable, "-m", "tracecore_perf", *SLICE, "--output-dir", str(out)] + (["--instructions"] if counted else [])
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"instruction_cost: a run exited {done.returncode}: {done.stderr.strip().splitlines()[-1:]}")
    return seconds, json.loads(done.stdout)["summary"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3, help="native and instruction runs of the slice, each (default 3)")
    parser.add_argument("--burn", action="store_true", help="keep one core busy with a CPU burner throughout")
    args = parser.parse_args()
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.burn else None
    try:
        with tempfile.TemporaryDirectory(prefix="tracecore-perf-instruction-cost-") as tmp:
            walls: dict[bool, list[float]] = {False: [], True: []}
            medians: list[dict[str, float]] = []
            for pair in range(args.pairs):
                for counted in (False, True) if pair % 2 == 0 else (True, False):
                    seconds, summary = timed_run(Path(tmp) / f"{pair}-{int(counted)}", counted)
                    walls[counted].append(seconds)
                    if counted:
                        medians.append({f"{r['agent']} on {r['task_ref']}": r["median"] for r in summary["instructions"]})
                    print(f"pair {pair + 1}: {'instructions' if counted else 'native':12} {seconds:6.1f} s", flush=True)
    finally:
        if burner is not None:
            burner.kill()
            burner.wait()
    native, counted = statistics.median(walls[False]), statistics.median(walls[True])
    print(
        f"\nslice wall time, median of {args.pairs}{' (one core kept busy)' if args.burn else ''}: "
        f"native {native:.1f} s, --instructions {counted:.1f} s (x{counted / native:.1f})"
    )
    print("instruction runs, largest difference between two runs' per-row medians:")
    for row in medians[0]:
        spread = max(abs(a[row] / b[row] - 1) for a, b in itertools.permutations(medians, 2)) if len(medians) > 1 else 0.0
        print(f"  {row}: {medians[0][row] / 1e6:,.3f} M instructions per episode, runs within {spread:.4%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
