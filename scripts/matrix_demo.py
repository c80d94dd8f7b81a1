"""A measured matrix on a two-node Ray cluster on this machine: start the cluster
(``ray.cluster_utils.Cluster``, each node with one ``perf_host`` and ``--num-cpus``, no
dashboard), run ``python -m tracecore_perf matrix FILE --ray HEAD --json`` as a maintainer
would, report the cells, the nodes that ran them and the wall time, tear the cluster down.

Writes ``matrix-demo-<stamp>.json`` and ``.md`` into ``deliverables/perf/bench/`` (``--out-dir``).

Usage::

    python scripts/matrix_demo.py                                   # deliverables/perf/matrix-example.toml
    python scripts/matrix_demo.py --matrix cells.toml --nodes 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matrix", type=Path, default=REPO / "deliverables/perf/matrix-example.toml")
    parser.add_argument("--nodes", type=int, default=2, help="nodes of the cluster, each with one perf_host")
    parser.add_argument("--num-cpus", type=int, default=1, help="CPUs each node offers Ray (the cells ask for none)")
    parser.add_argument("--out-dir", type=Path, default=REPO / "deliverables/perf/bench")
    parser.add_argument("--no-local", action="store_true", help="skip the same matrix run here, for comparison")
    args = parser.parse_args()

    from ray.cluster_utils import Cluster

    node = {"num_cpus": args.num_cpus, "resources": {"perf_host": 1}}
    t0 = time.monotonic()
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        for _ in range(args.nodes - 1):
            cluster.add_node(**node)
        cluster.wait_for_nodes()
        cluster_s = time.monotonic() - t0
        work = Path(tempfile.mkdtemp(prefix="matrix-demo-"))
        command = [sys.executable, "-m", "tracecore_perf", "matrix", str(args.matrix), "--ray", cluster.address,
                   "--output-dir", str(work), "--json"]  # fmt: skip
        load = os.getloadavg()
        t1 = time.monotonic()
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=3600)
        wall = time.monotonic() - t1
    finally:
        cluster.shutdown()
    if done.returncode not in (0, 1):
        print(done.stderr, file=sys.stderr)
        return done.returncode
    local_wall = None
    if not args.no_local:  # the same matrix here, cells one after another, for the time it takes
        here = [sys.executable, "-m", "tracecore_perf", "matrix", str(args.matrix), "--output-dir", str(work), "--json"]
        t2 = time.monotonic()
        local = subprocess.run(here, cwd=REPO, capture_output=True, text=True, timeout=3600)
        local_wall = round(time.monotonic() - t2, 2)
        if local.returncode not in (0, 1):
            print(local.stderr, file=sys.stderr)
            return local.returncode
    payload = json.loads(done.stdout)
    matrix = json.loads(Path(payload["matrix"]).read_text())
    cells = matrix["cells"]
    nodes = sorted({c["node"] for c in cells if c["node"]})
    busy = sum(
        datetime.fromisoformat(c["finished_at"]).timestamp() - datetime.fromisoformat(c["started_at"]).timestamp()
        for c in cells
        if c["started_at"] and c["finished_at"]
    )
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    record = {
        "stamp": stamp,
        "command": " ".join(["python -m tracecore_perf matrix", str(args.matrix.relative_to(REPO)), "--ray HEAD", "--json"]),
        "script": f"python scripts/matrix_demo.py --nodes {args.nodes} --num-cpus {args.num_cpus}",
        "host": {"cpus": os.cpu_count(), "load_avg_start": [round(x, 2) for x in load]},
        "nodes": args.nodes,
        "nodes_used": len(nodes),
        "cluster_start_s": round(cluster_s, 2),
        "matrix_wall_s": round(wall, 2),
        "matrix_own_wall_s": matrix["wall_s"],
        "local_wall_s": local_wall,
        "cell_seconds_total": round(busy, 2),
        "ok": payload["ok"],
        "cells": [
            {
                k: c[k]
                for k in (
                    "name",
                    "status",
                    "node",
                    "started_at",
                    "finished_at",
                    "throughput_eps",
                    "p50_wall_clock_s",
                    "p95_wall_clock_s",
                    "failure_count",
                    "episodes",
                    "attempt",
                )
            }
            for c in cells
        ],  # fmt: skip
        "comparisons": [{k: c[k] for k in ("baseline", "current", "verdict", "refused")} for c in matrix["comparisons"]],
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"matrix-demo-{stamp}.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        f"# Matrix on a {args.nodes}-node Ray cluster on one machine ({stamp})",
        "",
        f"`{record['script']}` ({args.matrix.relative_to(REPO)}); host: {os.cpu_count()} CPUs, load at start "
        f"{record['host']['load_avg_start']}.",
        "",
        f"{len(cells)} cells on {len(nodes)} of {args.nodes} nodes; matrix command {wall:.1f} s end to end "
        f"(the matrix's own {matrix['wall_s']:.1f} s); the cells' run times add up to {busy:.1f} s; "
        f"cluster start {cluster_s:.1f} s."
        + (f" The same matrix here, one cell after another: {local_wall:.1f} s." if local_wall is not None else ""),
        "",
        "| cell | status | node | started | finished | episodes | eps | p50 s | p95 s | failed |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        lines.append(
            f"| {c['name']} | {c['status']} | {(c['node'] or '-')[:8]} | {(c['started_at'] or '-')[11:19]} | "
            f"{(c['finished_at'] or '-')[11:19]} | {c['episodes']} | {c['throughput_eps']} | {c['p50_wall_clock_s']} | "
            f"{c['p95_wall_clock_s']} | {c['failure_count']} |"
        )
    (args.out_dir / f"matrix-demo-{stamp}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
