"""``continuous``'s wall time and verdicts on commit pairs of a TraceCore repository: how long
the gate takes on this host, split into building the two environments and counting the
episodes, and what it says of each pair.

    python scripts/continuous_bench.py [--repo PATH --pair BASE..HEAD ...] [--episodes 24 --workers 4]

Without ``--repo``, the pairs are those of the tests' TraceCore repository (the 1.1.3 release
from PyPI, then a harmless and a costly commit: tests/tracecore_repo.py): ``release..harmless``
(no change expected) and ``harmless..costly`` (~2% dearer). With ``--repo`` (a clone of
github.com/justindobbs/Tracecore, say), each ``--pair`` is two revisions of it. Each pair is
one whole ``python -m tracecore_perf continuous`` command, the default slice (24 episodes,
4 workers, --strict-spec), timed from outside; its own record (``continuous.json``) gives the
split. Writes ``continuous-<stamp>.json`` and ``.md`` into ``deliverables/perf/bench/``.
A benchmark, not a test: nothing here fails on a time.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _fixture_pairs(work: Path) -> tuple[Path, list[tuple[str, str, str]]]:
    sys.path.insert(0, str(REPO / "tests"))
    from tracecore_repo import make_repo, release_sdist

    commits = make_repo(work / "tracecore", release_sdist(work / "cache"))
    return work / "tracecore", [
        ("release..harmless", commits["release"], commits["harmless"]),
        ("harmless..costly", commits["harmless"], commits["costly"]),
    ]


def run_pair(repo: Path, base: str, head: str, args: argparse.Namespace, out: Path) -> dict:
    command = [
        sys.executable, "-m", "tracecore_perf", "continuous", base, head, "--repo", str(repo),
        "--episodes", str(args.episodes), "--workers", str(args.workers), "--strict-spec",
        "--output-dir", str(out), "--format", "json", "--fail-on", "regression",
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.monotonic() - started
    if done.returncode not in (0, 1):  # said in the table, and the other pairs still run
        said = [line for line in done.stderr.splitlines() if line.startswith("tracecore-perf: error:")]
        return {"base": base, "head": head, "exit_code": done.returncode, "wall_s": round(wall, 1), "error": (said or [""])[-1]}
    record = json.loads((out / "continuous.json").read_text())
    comparison = json.loads(done.stdout)
    return {
        "base": base,
        "head": head,
        "exit_code": done.returncode,
        "wall_s": round(wall, 1),
        "build_s": record["build_s"],
        "episodes_s": record["episodes_s"],
        "verdict": comparison["verdict"],
        "rows": [
            {
                "agent": row["agent"],
                "task_ref": row["task_ref"],
                "verdict": row["verdict"],
                "ratio": row["ratio"]["value"],
                "low": row["ratio"]["low"],
                "high": row["ratio"]["high"],
            }
            for row in comparison["rows"]
        ],
        "notices": [notice["message"] for notice in comparison["notices"]],
    }


def markdown(result: dict) -> str:
    lines = [
        f"# continuous on {result['repo_name']} ({result['stamp']})",
        "",
        f"Host: {result['host']}; {result['episodes']} episodes, {result['workers']} workers, --strict-spec, counted under "
        "Valgrind; each pair one whole command.",
        "",
        f"Command: `{result['command']}`",
        "",
        "| pair | verdict | exit | whole command | environments built | episodes counted | rows (head / base, instructions) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, pair in result["pairs"].items():
        if "error" in pair:
            lines.append(f"| {name} | refused | {pair['exit_code']} | {pair['wall_s']:.0f} s | | | {pair['error']} |")
            continue
        ratios = ", ".join(f"x{row['ratio']:.4f}" for row in pair["rows"])
        lines.append(
            f"| {name} | {pair['verdict']} | {pair['exit_code']} | {pair['wall_s']:.0f} s | {pair['build_s']:.0f} s | "
            f"{pair['episodes_s']:.0f} s | {ratios} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repo", type=Path, help="a TraceCore git checkout (default: the tests' repository, built from PyPI)")
    p.add_argument("--pair", action="append", default=[], metavar="BASE..HEAD", help="with --repo: a pair of revisions")
    p.add_argument("--episodes", type=int, default=24)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--out-dir", type=Path, default=REPO / "deliverables" / "perf" / "bench")
    args = p.parse_args()
    if bool(args.repo) != bool(args.pair):
        p.error("--repo and --pair go together")
    with tempfile.TemporaryDirectory(prefix="continuous-bench-") as scratch:
        work = Path(scratch)
        if args.repo:
            repo = args.repo.resolve()
            pairs = [(pair, *pair.split("..", 1)) for pair in args.pair]
        else:
            repo, pairs = _fixture_pairs(work)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        result = {
            "stamp": stamp,
            "repo_name": "the tests' TraceCore repository (1.1.3 from PyPI)" if not args.repo else str(args.repo),
            "host": f"{platform.node()}, {platform.processor() or platform.machine()}, Python {platform.python_version()}",
            "episodes": args.episodes,
            "workers": args.workers,
            "command": "python scripts/continuous_bench.py " + " ".join(sys.argv[1:]),
            "pairs": {},
        }
        for number, (name, base, head) in enumerate(pairs):
            print(f"continuous {name} ...", file=sys.stderr)
            result["pairs"][name] = run_pair(repo, base, head, args, work / f"pair-{number}")
            pair = result["pairs"][name]
            print(f"  {pair.get('verdict') or pair.get('error')} in {pair['wall_s']:.0f} s", file=sys.stderr)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"continuous-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out_dir / f"continuous-{stamp}.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
