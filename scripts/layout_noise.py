"""How far a change no episode runs moves an instruction count (the heap layout's share).

A TraceCore commit that only adds modules no episode imports changes no code an episode runs,
yet the zygote's state differs a little (its import system lists the package's folder), and with
it the heap every worker inherits: what pymalloc costs an episode (new pools, frees that empty a
pool) moves with that layout. This script measures how far, on this host: it installs the
harness's TraceCore into a fresh virtual environment, counts the toy row there (``--instructions``,
two episodes, two workers), then adds one module no episode imports to TraceCore's package and
counts again, ``--modules`` times. Prints each step's counts per seed, their median and its ratio
to the first, and the widest ratio: the noise floor of counts (0.2%) has to hold it.

    python scripts/layout_noise.py                 # 6 modules, 7 counted runs, ~3 minutes
    python scripts/layout_noise.py --modules 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOY = [{"agent": "agents/toy_agent.py", "task_ref": "filesystem_hidden_config@1", "seed": 42}]


def fresh_environment(where: Path) -> Path:
    """A virtual environment with the harness's TraceCore version installed from PyPI (held to
    CI's constraints): its python."""
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    python = where / "bin" / "python"
    constraints = REPO / ".ci" / "constraints.txt"
    pins = ["-c", str(constraints)] if constraints.is_file() else []
    version = metadata.version("tracecore")
    subprocess.run([str(python), "-m", "pip", "install", "-q", *pins, f"tracecore=={version}"], check=True)
    return python


def count(python: Path, scenario: Path, out: Path) -> dict[int, int]:
    """The toy row counted with the episodes of ``python``: seed -> instructions."""
    command = [sys.executable, "-m", "tracecore_perf", "--python", str(python), "--scenario", str(scenario),
               "--episodes", "2", "--workers", "2", "--instructions", "--no-progress", "--output-dir", str(out)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"layout_noise: a run exited {done.returncode}: {done.stderr.strip().splitlines()[-1:]}")
    (series,) = out.glob("perf-series-*.json")
    return {row["seed"]: row["instructions"] for row in json.loads(series.read_text())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=int, default=6, help="modules added one at a time (default 6)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tracecore-perf-layout-noise-") as tmp:
        root = Path(tmp)
        python = fresh_environment(root / "env")
        package = Path(
            subprocess.run([str(python), "-c", "import agent_bench, os; print(os.path.dirname(agent_bench.__file__))"],
                           capture_output=True, text=True, check=True).stdout.strip()
        )  # fmt: skip
        scenario = root / "toy.json"
        scenario.write_text(json.dumps(TOY))
        first = None
        widest = 0.0
        print("| modules added | counts by seed | median | against none |")
        print("|---|---|---|---|")
        for added in range(args.modules + 1):
            if added:
                (package / f"zz_layout_noise_{added}.py").write_text(f'NOTE = "no episode imports this ({added})"\n')
            counts = count(python, scenario, root / f"out-{added}")
            median = statistics.median(counts.values())
            first = first or median
            widest = max(widest, abs(median / first - 1))
            shown = ", ".join(f"{seed}: {value:,}" for seed, value in sorted(counts.items()))
            print(f"| {added} | {shown} | {median:,.0f} | x{median / first:.4f} |", flush=True)
    print(f"\nwidest: {widest:.3%} (the noise floor of counts: 0.2%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
