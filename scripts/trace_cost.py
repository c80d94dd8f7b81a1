"""What explain's traced replay costs: each default scenario row's episode run in this process
natively and then under the bytecode tracer (run/episode/pyprofile.py), CPU time of each, side
by side in one run. ``python scripts/trace_cost.py [--rounds N]``"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import tempfile
import time
from pathlib import Path

PYPROFILE = Path(__file__).resolve().parents[1] / "tracecore_perf" / "run" / "episode" / "pyprofile.py"
ROWS = (
    ("toy_agent.py", "filesystem_hidden_config@1"),
    ("rate_limit_agent.py", "rate_limited_api@1"),
    ("chain_agent.py", "rate_limited_chain@1"),
    ("ops_triage_agent.py", "log_alert_triage@1"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="episodes of each kind per row (medians are shown)")
    args = parser.parse_args()
    spec = importlib.util.spec_from_file_location("pyprofile", PYPROFILE)
    pyprofile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pyprofile)
    import agent_bench
    from agent_bench.runner.runner import run

    os.chdir(tempfile.mkdtemp(prefix="trace-cost-"))  # the tracer writes its stacks into the cwd
    agents = Path(agent_bench.__file__).parent / "agents"
    print("| row | native ms | traced ms | traced / native |\n|---|---:|---:|---:|")
    for agent, task in ROWS:
        path = str(agents / agent)
        run(path, task, 0)  # warm: imports and caches, as the zygote's warm-up does
        native, traced = [], []
        for seed in range(1, args.rounds + 1):
            start = time.process_time()
            run(path, task, seed)
            native.append(time.process_time() - start)
            tracer = pyprofile.BytecodeTracer()
            start = time.process_time()
            tracer.start()
            run(path, task, seed)
            tracer.stop_and_write()
            traced.append(time.process_time() - start)
        n, t = statistics.median(native), statistics.median(traced)
        print(f"| {agent} on {task} | {n * 1000:.1f} | {t * 1000:.1f} | x{t / n:.1f} |")


if __name__ == "__main__":
    main()
