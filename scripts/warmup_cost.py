"""What each step of the zygote's warm-up costs or saves every episode forked after it.

The zygote warms itself once (``warmup.warm_runtime()`` as it starts, ``warm()`` and
``rehearse()`` when the harness asks) and every episode process is forked from what that
left. A step pays for itself only if the episodes forked afterwards cost less with it than
without it. This script builds one long-lived *base* process per configuration below, each
warmed with the product's own code (``warmup.py``, with ``leave_out`` naming a step to skip),
and then asks the bases *in turn* to fork one episode each, as the product forks it: in the
child ``as_tracecore_runs()`` (sys.modules as a TraceCore process has it), TraceCore's
``run()`` called from this file's module frame, the report JSON-encoded and written
(``episode.finish``), ``os._exit``. Every round runs one episode of each default row (the
same seeds) in every base, the bases in a new random order each time, so whatever the host
does meanwhile falls on all configurations alike; each difference is taken round by round
(paired) and given with a distribution-free 95% interval of its median (sign test).

Per configuration: user and system CPU and minor page faults of the episode process (the
kernel's accounting, ``wait4``); with ``--instructions``, the instructions of each episode
process under Valgrind's callgrind (the bases run under it, counts zeroed at each fork:
``--zero-before=PyOS_AfterFork_Child``), which the host's load does not change. With
``--in-process`` each base runs its episodes itself, one after another
(``episode.run_episode_in_process`` plus the report's JSON, ``getrusage`` around it), with
sys.modules put as an episode process has it once before the first: what the warm-up does to
a process that runs TraceCore's episodes in a loop (fork_cost.py's in-process line).

The configurations (``imported`` -> ``runtime`` -> ``warm`` -> ``product`` is the chain of
the zygote's steps; the others add or leave out one step of the product's warm-up):

- ``imported``: TraceCore's runner imported and the workers' verdict loaded, as the zygote
  loads them anyway (``start()``), and nothing else;
- ``runtime``: + ``warm_runtime()``;
- ``warm``: + ``warm(rows)``;
- ``product``: + ``rehearse()`` of one episode per row: what the zygote does;
- ``before``: the product as it was before this script measured it: the verdict loaded
  before ``warm_runtime()``'s caches, ``gc.collect(); gc.freeze()`` after ``warm()`` and
  after ``rehearse()``; ``verdict-first`` and ``freeze``: one of the two each;
- ``rehearse-only``: ``imported`` + ``rehearse()`` (no ``warm_runtime()`` caches, no ``warm()``);
- ``no-warm``: the product without ``warm(rows)``;
- ``no-sources``: the product without linecache's copies of TraceCore's and the rows' sources;
- ``no-stack``: the product without its ``inspect.stack()`` calls;
- ``warm-verdict-first``, ``warm-freeze``, ``warm-no-sources``, ``warm-no-stack``: the same
  steps added to or left out of ``warm``, where no warm-up episode ran (``--warmup 0``, a
  user's own agent file, which ``rehearse()`` never runs, a row whose rehearsal failed);
- ``kept-modules``: the product, its episodes run *without* ``as_tracecore_runs()`` (the
  harness's and the episode side's modules left in sys.modules): what ``fork_cost.py``
  measured before it did as the product does.

Instruction counts are deterministic for one version of this file (``PYTHONHASHSEED=0``); the
absolute figures move with the file itself (its module frame is under every ``run()``), so
compare configurations within one run.

Usage::

    python scripts/warmup_cost.py [--rounds 40] [--configs imported,runtime,...]
    python scripts/warmup_cost.py --instructions [--rounds 2]

``PYTHONHASHSEED=0`` in every base (the same dict layouts in each). A benchmark, not a test.
"""

from __future__ import annotations

# Only what TraceCore imports anyway at module level: a base's episodes run with this
# module's imports in sys.modules (the coordinator's own are imported where it uses them).
import gc
import json
import math
import os
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from fork_cost import ROWS, load_episode_side  # the same rows, the zygote's loader

# name: (warm_runtime?, warm?, rehearse?, steps left out of warmup.py's, steps added that
# warmup.py no longer takes, as_tracecore_runs in the child?). Added steps: "verdict-first",
# the workers' verdict loaded before warm_runtime()'s caches (where warm_runtime loaded it
# until this script measured it); "freeze", gc.collect() + gc.freeze() at the end of warm()
# and of rehearse() (as they did until then).
NONE: frozenset[str] = frozenset()
CONFIGS = {
    "imported": (False, False, False, NONE, NONE, True),
    "runtime": (True, False, False, NONE, NONE, True),
    "warm": (True, True, False, NONE, NONE, True),
    "product": (True, True, True, NONE, NONE, True),
    "before": (True, True, True, NONE, frozenset({"verdict-first", "freeze"}), True),
    "rehearse-only": (False, False, True, NONE, NONE, True),
    "no-warm": (True, False, True, NONE, NONE, True),
    "verdict-first": (True, True, True, NONE, frozenset({"verdict-first"}), True),
    "freeze": (True, True, True, NONE, frozenset({"freeze"}), True),
    "no-sources": (True, True, True, frozenset({"sources"}), NONE, True),
    "no-stack": (True, True, True, frozenset({"stack"}), NONE, True),
    "kept-modules": (True, True, True, NONE, NONE, False),
    # the same steps where no warm-up episode ran (--warmup 0, a user's own agent file, a
    # row whose rehearsal failed): warm_runtime() and warm() alone
    "warm-verdict-first": (True, True, False, NONE, frozenset({"verdict-first"}), True),
    "warm-freeze": (True, True, False, NONE, frozenset({"freeze"}), True),
    "warm-no-sources": (True, True, False, frozenset({"sources"}), NONE, True),
    "warm-no-stack": (True, True, False, frozenset({"stack"}), NONE, True),
}
# what each step is worth: (the configuration without it, the one with it, the step)
VERDICTS = (
    ("imported", "product", "the whole warm-up"),
    ("imported", "runtime", "warm_runtime() on TraceCore imported"),
    ("runtime", "warm", "warm(rows) after warm_runtime()"),
    ("warm", "product", "rehearse() after warm()"),
    ("rehearse-only", "product", "warm_runtime() + warm() under rehearse()"),
    ("no-warm", "product", "warm(rows) in the product"),
    ("before", "product", "this change (verdict after the caches, no gc.freeze())"),
    ("product", "verdict-first", "the verdict before the caches"),
    ("product", "freeze", "gc.collect() + gc.freeze()"),
    ("no-sources", "product", "the source caches (linecache)"),
    ("no-stack", "product", "inspect.stack() calls"),
    ("kept-modules", "product", "as_tracecore_runs() in the episode"),
    ("warm", "warm-verdict-first", "the verdict before the caches, no rehearse()"),
    ("warm", "warm-freeze", "gc.collect() + gc.freeze(), no rehearse()"),
    ("warm-no-sources", "warm", "the source caches, no rehearse()"),
    ("warm-no-stack", "warm", "inspect.stack() calls, no rehearse()"),
)


def rows() -> list[dict]:
    import agent_bench

    agents = Path(agent_bench.__file__).parent / "agents"
    return [{"agent": str(agents / a), "agent_label": f"agents/{a}", "task_ref": t, "seed": 0} for a, t in ROWS]


# --- a base: warmed as one configuration says, then forks one episode per request ----------


def base(name: str, in_process: bool = False):
    """Warm this process as configuration ``name`` says, say so on stdout, then fork one
    episode per job line on stdin and answer each with the kernel's accounting of it (or,
    ``in_process``, run it here and answer with getrusage's difference). Returns only in an
    episode process: (finish, job), for the module frame to run."""
    import importlib

    zygote = load_episode_side()
    package = zygote.__name__.rpartition(".")[0]
    warmup = importlib.import_module(f"{package}.warmup")
    spec = importlib.import_module(f"{package}.spec")
    episode = importlib.import_module(f"{package}.episode")
    runtime, warm, rehearse, leave_out, added, forget = CONFIGS[name]
    scenario = rows()
    scratch = tempfile.mkdtemp(prefix=f"warmup-cost-{name}-")
    os.chdir(scratch)
    # zygote.start(): warm_runtime() first (forkserver), then the harness's imports and the
    # verdict (a no-op where warm_runtime loaded it)
    if "verdict-first" in added:  # as warm_runtime() did: after TraceCore's imports, before its caches
        import agent_bench
        import agent_bench.runner.runner  # noqa: F401

        with warmup.harness_imports():
            spec.warm_verdict()
    if runtime:
        warmup.warm_runtime(leave_out)
    else:
        import agent_bench.runner.runner  # noqa: F401
    with warmup.harness_imports():
        import socket  # noqa: F401

        spec.warm_verdict()
    if warm:
        warmup.warm(scenario, leave_out)
        if "freeze" in added:
            gc.collect()
            gc.freeze()
    if rehearse:
        failures = warmup.rehearse({"rows": scenario, "episodes": 1, "scratch_root": scratch, "deadline_s": 600})
        if failures:
            raise SystemExit(f"warmup_cost {name}: warm-up failed: {failures}")
        if "freeze" in added:
            gc.collect()
            gc.freeze()
    if in_process and forget:
        warmup.as_tracecore_runs()  # once, here: sys.modules as the episode processes have it
    sys.stdout.write(json.dumps({"ready": name, "modules": len(sys.modules)}) + "\n")
    sys.stdout.flush()
    number = 0
    while line := sys.stdin.readline():
        job = json.loads(line)
        number += 1
        folder = os.path.join(scratch, str(number))
        os.mkdir(folder)
        if in_process:
            import resource

            os.chdir(folder)
            before = resource.getrusage(resource.RUSAGE_SELF)
            json.dumps(episode.run_episode_in_process(job))
            after = resource.getrusage(resource.RUSAGE_SELF)
            os.chdir(scratch)
            shutil.rmtree(folder, ignore_errors=True)
            answer = {
                "pid": os.getpid(), "status": 0, "user": after.ru_utime - before.ru_utime,
                "sys": after.ru_stime - before.ru_stime, "minflt": after.ru_minflt - before.ru_minflt,
            }  # fmt: skip
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
            continue
        pid = os.fork()
        if pid == 0:
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2, 3):  # 3: the result pipe (episode.finish writes the report there)
                os.dup2(null, fd)
            os.closerange(4, 1024)
            os.chdir(folder)
            if forget:
                warmup.as_tracecore_runs()
            return episode.finish, job
        _, status, usage = os.wait4(pid, 0)
        shutil.rmtree(folder, ignore_errors=True)
        answer = {"pid": pid, "status": status, "user": usage.ru_utime, "sys": usage.ru_stime, "minflt": usage.ru_minflt}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    shutil.rmtree(scratch, ignore_errors=True)
    sys.stdout.flush()
    os._exit(0)


# --- the coordinator ---------------------------------------------------------------------


def sign_test_interval(values: list[float]) -> tuple[float, float]:
    """A distribution-free ~95% interval for the median of ``values`` (sign test)."""
    ordered = sorted(values)
    n = len(ordered)
    k = max(0, math.floor((n - 1.96 * math.sqrt(n)) / 2))
    return ordered[k], ordered[n - 1 - k]


def read_count(folder: str, pid: int) -> int:
    text = Path(folder, f"callgrind.out.{pid}").read_text(errors="replace")
    found = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
    if not found:
        raise SystemExit(f"warmup_cost: no count in callgrind.out.{pid}")
    return int(found.group(1))


def coordinate(args) -> dict:
    import subprocess

    names = args.configs
    counts_dir = tempfile.mkdtemp(prefix="warmup-cost-callgrind-") if args.instructions else None
    env = dict(os.environ, PYTHONHASHSEED="0")
    bases = {}
    for name in names:
        command = [sys.executable, str(Path(__file__).resolve()), "--base", name] + (["in-process"] if args.in_process else [])
        if counts_dir:
            command = [
                "valgrind", "-q", "--tool=callgrind", "--zero-before=PyOS_AfterFork_Child",
                f"--callgrind-out-file={counts_dir}/callgrind.out.%p", *command,
            ]  # fmt: skip
        bases[name] = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    modules = {}
    for name, process in bases.items():
        line = process.stdout.readline()
        if not line:
            raise SystemExit(f"warmup_cost: base {name} did not start")
        modules[name] = json.loads(line)["modules"]
    scenario = rows()
    samples: dict[str, list[list[dict]]] = {name: [] for name in names}  # per round, per row
    rng = random.Random(args.seed)
    for number in range(args.rounds):
        for name in names:
            samples[name].append([])
        for row in scenario:
            job = dict(row, seed=1000 + number)
            order = list(names)
            rng.shuffle(order)
            for name in order:
                process = bases[name]
                process.stdin.write(json.dumps(job) + "\n")
                process.stdin.flush()
                answer = json.loads(process.stdout.readline())
                if answer["status"] != 0:
                    raise SystemExit(f"warmup_cost: an episode of {name} exited with status {answer['status']}")
                samples[name][-1].append(answer)
    for process in bases.values():
        process.stdin.close()
        process.wait()
    if counts_dir:
        for name in names:
            for episode_row in samples[name]:
                for answer in episode_row:
                    answer["instructions"] = read_count(counts_dir, answer["pid"])
        shutil.rmtree(counts_dir, ignore_errors=True)
    return {"names": names, "modules": modules, "samples": samples}


def per_round(samples: list[list[dict]], key) -> list[float]:
    """Each round's mean over the rows (one episode of each)."""
    import statistics

    return [statistics.fmean(key(answer) for answer in episode_row) for episode_row in samples]


METRICS = {
    "user_ms": lambda a: a["user"] * 1e3,
    "sys_ms": lambda a: a["sys"] * 1e3,
    "cpu_ms": lambda a: (a["user"] + a["sys"]) * 1e3,
    "faults": lambda a: a["minflt"],
}


def summarize(result: dict, instructions: bool) -> dict:
    import statistics

    names, samples = result["names"], result["samples"]
    metrics = dict(METRICS)
    if instructions:
        metrics["instructions_m"] = lambda a: a["instructions"] / 1e6
    table = {}
    for name in names:
        entry = {"modules": result["modules"][name]}
        for metric, key in metrics.items():
            values = per_round(samples[name], key)
            quartiles = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
            entry[metric] = {"median": statistics.median(values), "p25": quartiles[0], "p75": quartiles[2]}
        table[name] = entry
    verdicts = []
    for without, with_, step in VERDICTS:
        if without not in samples or with_ not in samples:
            continue
        verdict = {"step": step, "without": without, "with": with_}
        for metric, key in metrics.items():
            # what the step saves each episode: without it minus with it, round by round
            saved = [a - b for a, b in zip(per_round(samples[without], key), per_round(samples[with_], key), strict=True)]
            low, high = sign_test_interval(saved)
            verdict[metric] = {"saved": statistics.median(saved), "low": low, "high": high}
        verdicts.append(verdict)
    return {"table": table, "verdicts": verdicts}


def judge(entry: dict) -> str:
    if entry["low"] > 0:
        return "saves"
    if entry["high"] < 0:
        return "costs"
    return "no difference"


def report(summary: dict, args, elapsed: float) -> None:
    load = os.getloadavg()
    where = "in-process" if args.in_process else "forked"
    print(
        f"{args.rounds} rounds x {len(ROWS)} rows per configuration, {where}, interleaved; {elapsed:.0f} s; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; Python {sys.version.split()[0]}"
    )
    print("per episode: each round's mean over the rows; median over rounds [p25-p75]")
    # under callgrind the CPU and the faults are Valgrind's: only the count means anything
    columns = ["instructions_m"] if args.instructions else ["user_ms", "sys_ms", "cpu_ms", "faults"]
    print("| configuration | modules | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for name, entry in summary["table"].items():
        cells = [f"{entry[c]['median']:.2f} [{entry[c]['p25']:.2f}-{entry[c]['p75']:.2f}]" for c in columns]
        if "faults" in columns:
            f = entry["faults"]
            cells[columns.index("faults")] = f"{f['median']:.0f} [{f['p25']:.0f}-{f['p75']:.0f}]"
        print(f"| {name} | {entry['modules']} | " + " | ".join(cells) + " |")
    print()
    print("what each step saves per episode (without it - with it), median of the rounds' differences [95% interval]")
    print("| step | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for verdict in summary["verdicts"]:
        cells = []
        for c in columns:
            v = verdict[c]
            digits = 0 if c == "faults" else (3 if c == "instructions_m" else 2)
            cells.append(f"{v['saved']:+.{digits}f} [{v['low']:+.{digits}f}, {v['high']:+.{digits}f}] {judge(v)}")
        print(f"| {verdict['step']} (`{verdict['without']}` - `{verdict['with']}`) | " + " | ".join(cells) + " |")


def main(argv: list[str]):
    if argv[:1] == ["--base"]:  # before argparse, which no base needs in its sys.modules
        return base(argv[1], in_process=argv[2:] == ["in-process"])
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rounds", type=int, default=None, help="episodes of each row per configuration (default 40; 2 with --instructions)"
    )
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, of: {', '.join(CONFIGS)}")
    parser.add_argument("--instructions", action="store_true", help="count each episode's instructions under callgrind")
    parser.add_argument(
        "--in-process", action="store_true",
        help="run each episode in its base, not in a fork of it (what fork_cost.py's in-process line measures)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="of the bases' order in each round")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.add_argument("--save", type=Path, help="also write every episode's figures (JSON) here")
    args = parser.parse_args(argv)
    args.configs = [name for name in args.configs.split(",") if name]
    if args.in_process and args.instructions:
        parser.error("--instructions counts forked episodes only")
    unknown = [name for name in args.configs if name not in CONFIGS]
    if unknown:
        parser.error(f"unknown configurations: {', '.join(unknown)}")
    if args.rounds is None:
        args.rounds = 2 if args.instructions else 40
    started = time.monotonic()
    result = coordinate(args)
    if args.save:
        args.save.write_text(json.dumps(result))
    summary = summarize(result, args.instructions)
    if args.json:
        print(json.dumps(summary))
    else:
        report(summary, args, time.monotonic() - started)
    raise SystemExit(0)


# As episode_process.py does: run() called from this module's frame, nothing of ours above it.
finish, job = main(sys.argv[1:])  # returns only in an episode process
started = time.perf_counter()
try:
    from agent_bench.runner.runner import run

    artifact = run(job["agent"], job["task_ref"], int(job["seed"]))
except BaseException as exc:  # noqa: BLE001 - an agent may raise anything, SystemExit included
    artifact = exc
finish(artifact, time.perf_counter() - started)
