"""Regenerate a committed baseline in one command (run it on a quiet host of the CI machine class):

    python scripts/refresh_baseline.py slice     # deliverables/perf/baseline-slice/: 24 episodes, 4 workers, --strict-spec
    python scripts/refresh_baseline.py slice-instructions  # baseline-slice-instructions/: the same, --instructions
    python scripts/refresh_baseline.py release   # deliverables/perf/baseline/: 1,000 episodes, 8 workers, --strict-spec

It runs the command into a temporary directory, refuses a run that failed an episode or a
threshold or started on a busy host (``--allow-busy`` to accept the last), or that ran while the
machine itself was slow: a VM of this class sometimes runs at half its CPU speed for minutes with
nothing to see in the load average, so the speed of a fixed hash chain is measured before and
after the run and must be within ``--min-speed`` of the class's quiet speed. (The instruction
baseline is exempt from both: the host's load and speed do not move instruction counts; it
must be made with the Python build, TraceCore and Valgrind CI will use, which ``compare
--same-runtime`` holds it to, and from an environment installed as ``.ci/run`` installs its
own (a fresh venv, pip upgraded, ``build`` and ``twine``, then ``pip install -c
.ci/constraints.txt -e ".[test,ray]"``): an instruction verdict refuses episode interpreters
installed differently, and a long-lived development venv is.) Then it replaces the
folder's published files with the new run's (the slice: manifest, summary, metrics, series,
samples; the release baseline also its charts and HTML report). Commit the folder in one commit
and say in the message why, on what host, and what moved.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from validity_bench import QUIET_ROUNDS_PER_MS, rounds_per_ms  # noqa: E402

KINDS = {
    "slice": (REPO / "deliverables" / "perf" / "baseline-slice", ["--episodes", "24", "--workers", "4", "--strict-spec"]),
    "slice-instructions": (
        REPO / "deliverables" / "perf" / "baseline-slice-instructions",
        ["--episodes", "24", "--workers", "4", "--strict-spec", "--instructions"],
    ),
    "release": (
        REPO / "deliverables" / "perf" / "baseline",
        ["--episodes", "1000", "--workers", "8", "--strict-spec", "--report"],
    ),
}
JSON_KINDS = ("manifest", "summary", "metrics", "series", "samples")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted(KINDS), help="which baseline")
    parser.add_argument("--allow-busy", action="store_true", help="accept a run that started on a busy host")
    parser.add_argument(
        "--min-speed",
        type=float,
        default=0.85,
        help=f"least share of the quiet speed ({QUIET_ROUNDS_PER_MS:,} hash rounds/ms) before and after the run (default 0.85)",
    )
    args = parser.parse_args()
    target, flags = KINDS[args.kind]
    speeds = [rounds_per_ms()]

    with tempfile.TemporaryDirectory(prefix="tracecore-perf-baseline-") as tmp:
        out = Path(tmp)
        command = [sys.executable, "-m", "tracecore_perf", *flags, "--output-dir", str(out), "--json", "--no-progress"]
        print("$ " + " ".join(["python", "-m", "tracecore_perf", *flags]), flush=True)
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(done.stderr[-2000:], file=sys.stderr)
            sys.exit(f"refresh_baseline: the run exited {done.returncode}; the baseline is unchanged")
        stamp = json.loads(done.stdout)["stamp"]
        manifest = json.loads((out / f"perf-manifest-{stamp}.json").read_text())
        host = manifest["host"]
        print(f"run {stamp}: host load {host['load_avg_start']}, quiet={host['quiet']} {host.get('quiet_reason') or ''}")
        speeds.append(rounds_per_ms())
        print(f"CPU speed: {speeds[0]:,.0f} rounds/ms before, {speeds[1]:,.0f} after (quiet: {QUIET_ROUNDS_PER_MS:,})")
        counted = "--instructions" in flags  # counts do not move with the host's load or speed
        if not host["quiet"] and not args.allow_busy and not counted:
            sys.exit("refresh_baseline: the host was busy at the start; rerun on a quiet host (or --allow-busy)")
        if min(speeds) < args.min_speed * QUIET_ROUNDS_PER_MS and not counted:
            sys.exit("refresh_baseline: the machine ran slow (see CPU speed); rerun when it is back to speed")
        check = subprocess.run(
            [sys.executable, "-m", "tracecore_perf", "check", stamp, "--search-dir", str(out)], cwd=REPO, text=True, check=False
        )
        if check.returncode != 0:
            sys.exit(f"refresh_baseline: check exited {check.returncode}; the baseline is unchanged")

        target.mkdir(parents=True, exist_ok=True)
        for old in target.glob("perf-*"):
            old.unlink()
        names = [f"perf-{kind}-{stamp}.json" for kind in JSON_KINDS]
        if "--report" in flags:
            names += [p.name for p in out.glob(f"perf-chart-*-{stamp}.*")] + [f"perf-report-{stamp}.html"]
        for name in names:
            (target / name).write_bytes((out / name).read_bytes())
    print(f"{target.relative_to(REPO)}: now run {stamp} ({len(names)} files); commit the folder in one commit")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
