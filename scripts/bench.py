"""Throughput and overhead benchmark: tracecore-perf against TraceCore's own batch runner.

One invocation, one machine, the default scenario (seed = row seed + episode index) at N
episodes through four modes, each in its own subprocess started cold:

  run_batch   TraceCore's ``agent_bench.runner.batch.run_batch(jobs, workers=8, timeout=180)``
  spawn       ``python -m tracecore_perf --isolation spawn --workers W``
  forkserver  ``python -m tracecore_perf --isolation forkserver --workers W``
  inprocess   a plain loop calling ``agent_bench.runner.runner.run()`` (and ``persist_run``,
              as every other mode does) in one process: no isolation, the ceiling per core

then the everyday 24-episode slice (``--episodes 24 --workers 4 --strict-spec``) in
forkserver mode, timed from process start to exit; with ``--tracecore-scaffold PATH`` (TraceCore's
own ``scripts/perf_harness.py`` from a TraceCore checkout of the installed version: it is not in
the PyPI package) each slice run is followed by the scaffold's slice with the same flags, in its
own scratch directory, and the ratio of the medians is judged.

Two throughputs per mode, never mixed up:

- ``whole_eps``: episodes / wall time of the whole command, process start to exit, timed
  by this script around the subprocess (imports, validation, worker start-up, metrics and
  publishing included). The targets are judged on this figure.
- ``in_run_eps``: the mode's own figure where it has one: tracecore-perf's summary
  ``throughput_eps`` (workers start-up to last row, before metrics and publishing); for
  run_batch and the in-process loop, episodes / time around the call or the loop.

Usage::

    python scripts/bench.py                       # 1000 episodes, workers 8
    python scripts/bench.py --episodes 300        # a quicker, indicative run
    python scripts/bench.py --episodes 8 --slice-repeats 0 --out-dir /tmp/b   # smoke
    python scripts/bench.py --tracecore-scaffold ../tracecore/scripts/perf_harness.py

Figures from a shared or busy host are indicative only; the load average is recorded
before each measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODES = ("run_batch", "spawn", "forkserver", "inprocess")
SLICE_ARGS = ["--episodes", "24", "--workers", "4", "--strict-spec", "--isolation", "forkserver"]
SCAFFOLD_SLICE_ARGS = ["--episodes", "24", "--workers", "4", "--strict-spec"]
SAMPLE_EVERY_S = 0.05

# The targets (2-core machine, ratios from one run).
TARGET_FORKSERVER_VS_BATCH = 8.0
TARGET_FORKSERVER_VS_CEILING = 0.60
TARGET_CPU_EFFICIENCY = 0.55  # ceiling CPU per episode / forkserver tree CPU per episode
TARGET_SLICE_VS_SCAFFOLD = 0.30  # our slice's wall / TraceCore's scaffold's, same flags
TARGET_SPAWN_VS_BATCH = 1.3
TARGET_HARNESS_CPU_MS = 5.0
TARGET_SLICE_S = 1.5
TARGET_TREE_VS_FORK_FLOOR = 0.85  # fork floor CPU per episode / forkserver tree CPU per episode


# --- the children: stdlib + agent_bench only, so they start as cold as run_batch's -------


def _jobs(rows: list[dict], episodes: int) -> list[tuple[str, str, int]]:
    """The plan of tracecore_perf.run.scenario.plan: row i % len(rows), seed row.seed + i."""
    return [
        (rows[i % len(rows)]["agent"], rows[i % len(rows)]["task_ref"], rows[i % len(rows)]["seed"] + i) for i in range(episodes)
    ]


def child_run_batch(spec: dict) -> dict:
    from agent_bench.runner.batch import BatchJob, run_batch

    jobs = [BatchJob(agent=a, task_ref=t, seed=s) for a, t, s in _jobs(spec["rows"], spec["episodes"])]
    start = time.perf_counter()
    result = run_batch(jobs, workers=spec["batch_workers"], timeout=spec["timeout"])
    elapsed = time.perf_counter() - start
    summary = result["summary"]
    return {"in_run_elapsed_s": elapsed, "passed": summary["passed"], "failed": summary["failed"]}


# The in-process ceiling is a script file of its own (see its docstring for why not ``-c``).
INPROCESS_CEILING = Path(__file__).resolve().with_name("inprocess_ceiling.py")


def child_main(argv: list[str]) -> None:
    spec_json, result_path = argv
    Path(result_path).write_text(json.dumps(child_run_batch(json.loads(spec_json))))


# --- the parent -----------------------------------------------------------------------


class PeakSampler(threading.Thread):
    """Samples one PID's RSS with psutil every ``interval`` s; keeps the peak and a series."""

    def __init__(self, pid: int, interval: float = SAMPLE_EVERY_S) -> None:
        super().__init__(daemon=True)
        import psutil

        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.series: list[tuple[float, int]] = []
        self._halt = threading.Event()
        self.t0 = time.perf_counter()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                rss = self.proc.memory_info().rss
            except Exception:  # noqa: BLE001 - the process ended
                return
            self.peak = max(self.peak, rss)
            self.series.append((round(time.perf_counter() - self.t0, 3), rss))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def load_avg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def timed(cmd: list[str], cwd: Path, *, sample_pid: bool = True, keep_series: bool = False) -> dict:
    """Run ``cmd`` from process start to exit; returns its wall time, exit code, the CPU
    time of its whole process tree (kernel accounting via wait4) and its peak RSS
    (psutil, sampled; the top process only, not its children)."""
    out_path, err_path = cwd / "stdout.txt", cwd / "stderr.txt"
    load = load_avg()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err)
        sampler = PeakSampler(proc.pid) if sample_pid else None
        if sampler:
            sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if sampler:
            sampler.stop()
    record = {
        "command": cmd,
        "load_avg_before": load,
        "returncode": proc.returncode,
        "whole_s": round(wall, 4),
        "tree_cpu_s": round(usage.ru_utime + usage.ru_stime, 4),
        "top_process_peak_rss_bytes": sampler.peak if sampler else None,
        "stdout": out_path.read_text(errors="replace"),
        "stderr_tail": err_path.read_text(errors="replace")[-2000:],
    }
    if keep_series:
        record["rss_series"] = sampler.series if sampler else []
    return record


def run_mode(mode: str, args: argparse.Namespace, rows: list[dict], work: Path) -> dict:
    cwd = Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=work))
    python = args.python
    if mode in ("run_batch", "inprocess"):
        workers = args.batch_workers if mode == "run_batch" else 1
        spec = {"rows": rows, "episodes": args.episodes, "batch_workers": args.batch_workers, "timeout": args.timeout}
        result_path = cwd / "result.json"
        if mode == "run_batch":
            cmd = [python, str(Path(__file__).resolve()), "_child", json.dumps(spec), str(result_path)]
        else:
            cmd = [python, str(INPROCESS_CEILING), json.dumps(spec), str(result_path)]
        done = timed(cmd, cwd)
        inner = json.loads(result_path.read_text()) if result_path.exists() else {}
        record = {
            "mode": mode,
            "workers": workers,
            **{k: v for k, v in done.items() if k not in ("stdout",)},
            "passed": inner.get("passed"),
            "failed": inner.get("failed"),
            "in_run_elapsed_s": round(inner["in_run_elapsed_s"], 4) if inner else None,
            "in_run_source": "time around run_batch()"
            if mode == "run_batch"
            else "time around the module-level loop (run + persist_run)",
        }
        if mode == "inprocess" and inner:
            record["run_only_s"] = round(inner["run_only_s"], 4)
            record["run_only_eps"] = round(args.episodes / inner["run_only_s"], 3) if inner["run_only_s"] else None
    else:
        cmd = [
            python,
            "-m",
            "tracecore_perf",
            "--episodes",
            str(args.episodes),
            "--workers",
            str(args.workers),
            "--isolation",
            mode,
            "--timeout",
            str(args.timeout),
            "--output-dir",
            str(cwd / "out"),
            "--json",
            "--no-progress",
        ]
        done = timed(cmd, cwd)
        record = {"mode": mode, "workers": args.workers, **{k: v for k, v in done.items() if k != "stdout"}}
        record.update(_harness_figures(done["stdout"]))
    n = args.episodes
    record["episodes"] = n
    record["whole_eps"] = round(n / record["whole_s"], 3)
    record["tree_cpu_ms_per_episode"] = round(record["tree_cpu_s"] * 1000 / n, 3)
    if record.get("in_run_elapsed_s"):
        record["in_run_eps"] = round(n / record["in_run_elapsed_s"], 3)
    if not args.keep_work:
        shutil.rmtree(cwd, ignore_errors=True)
    else:
        record["work_dir"] = str(cwd)
    return record


def _harness_figures(stdout: str) -> dict:
    """The figures tracecore-perf publishes about itself, from its ``--json`` output."""
    try:
        payload = json.loads(stdout)
    except ValueError:
        return {"passed": None, "failed": None, "error": "no JSON on stdout"}
    summary = payload["summary"]
    resources = summary["resources"]
    episodes = summary["episodes"] or 1
    return {
        "passed": summary["success_count"],
        "failed": summary["failure_count"],
        "in_run_elapsed_s": summary["elapsed_s"],
        "in_run_source": "summary elapsed_s (worker start-up to last row; excludes validation, metrics, publishing)",
        "summary_throughput_eps": summary["throughput_eps"],
        "harness_cpu_s": resources["harness_cpu_s"],
        "workers_cpu_s": resources["workers_cpu_s"],
        "harness_cpu_ms_per_episode": resources["harness_cpu_ms_per_episode"],
        "harness_only_cpu_ms_per_episode": round(resources["harness_cpu_s"] * 1000 / episodes, 4),
        "workers_only_cpu_ms_per_episode": round(resources["workers_cpu_s"] * 1000 / episodes, 4),
        "episode_cpu_ms_per_episode": round(resources["episode_cpu_s_total"] * 1000 / episodes, 4),
        "harness_peak_rss_bytes": resources["harness_peak_rss_bytes"],
        "episode_s_mean": summary["episode_s"]["mean"],
        "wall_clock_s_mean": summary["wall_clock_s"]["mean"],
        "wall_clock_s_p95": summary["wall_clock_s"]["p95"],
    }


def run_slice(args: argparse.Namespace, work: Path) -> dict:
    """The everyday slice, ``slice_repeats`` times; after each, TraceCore's own scaffold with
    the same flags when ``--tracecore-scaffold`` names it (interleaved, so drift in the host's
    load falls on both alike)."""
    runs, scaffold_runs = [], []
    for _ in range(args.slice_repeats):
        cwd = Path(tempfile.mkdtemp(prefix="slice-", dir=work))
        cmd = [args.python, "-m", "tracecore_perf", *SLICE_ARGS, "--output-dir", str(cwd / "out"), "--json", "--no-progress"]
        done = timed(cmd, cwd)
        figures = _harness_figures(done["stdout"])
        runs.append(
            {
                "whole_s": done["whole_s"],
                "in_run_elapsed_s": figures.get("in_run_elapsed_s"),
                "returncode": done["returncode"],
                "passed": figures.get("passed"),
                "load_avg_before": done["load_avg_before"],
            }
        )
        if args.tracecore_scaffold:
            scaffold_cwd = Path(tempfile.mkdtemp(prefix="scaffold-", dir=work))
            scaffold = timed([args.python, str(args.tracecore_scaffold), *SCAFFOLD_SLICE_ARGS], scaffold_cwd)
            try:
                passed = json.loads(scaffold["stdout"])["summary"].get("success_count")
            except (ValueError, KeyError, TypeError, AttributeError):
                passed = None
            scaffold_runs.append(
                {
                    "whole_s": scaffold["whole_s"],
                    "returncode": scaffold["returncode"],
                    "passed": passed,
                    "load_avg_before": scaffold["load_avg_before"],
                }
            )
        if not args.keep_work:
            shutil.rmtree(cwd, ignore_errors=True)
    result = {"command": "python -m tracecore_perf " + " ".join(SLICE_ARGS), "runs": runs, **_medians(runs)}
    if scaffold_runs:
        result["scaffold"] = {
            "command": f"python {args.tracecore_scaffold} " + " ".join(SCAFFOLD_SLICE_ARGS),
            "runs": scaffold_runs,
            **_medians(scaffold_runs),
        }
        result["vs_scaffold"] = round(result["whole_s_median"] / result["scaffold"]["whole_s_median"], 3)
    return result


def _medians(runs: list[dict]) -> dict:
    whole = sorted(r["whole_s"] for r in runs)
    return {"whole_s_median": whole[len(whole) // 2] if whole else None, "whole_s_min": whole[0] if whole else None}


def ratios_and_targets(modes: dict[str, dict], cores_used: int, slice_: dict | None) -> tuple[dict, list[dict]]:
    ratios: dict[str, dict] = {}
    for basis in ("whole_eps", "in_run_eps"):
        batch = modes.get("run_batch", {}).get(basis)
        ceiling = modes.get("inprocess", {}).get(basis)
        table = {}
        for name, rec in modes.items():
            eps = rec.get(basis)
            if not eps:
                continue
            table[name] = {
                "vs_run_batch": round(eps / batch, 3) if batch else None,
                "vs_inprocess": round(eps / ceiling, 3) if ceiling else None,
                "vs_inprocess_x_cores": round(eps / (ceiling * cores_used), 3) if ceiling else None,
            }
        ratios[basis] = table
    # Load-robust companion: CPU per episode of the whole process tree (kernel accounting), as a
    # fraction of the in-process loop's. On a shared host CPU is shared per process, so one
    # process (the in-process loop) loses more throughput to other load than eight do.
    ceiling_cpu = modes.get("inprocess", {}).get("tree_cpu_ms_per_episode")
    ratios["cpu_efficiency_vs_inprocess"] = {
        name: round(ceiling_cpu / rec["tree_cpu_ms_per_episode"], 3)
        for name, rec in modes.items()
        if ceiling_cpu and rec.get("tree_cpu_ms_per_episode")
    }

    def verdict(name: str, value, target, op: str, basis: str) -> dict:
        ok = None if value is None else {">=": value >= target, "<=": value <= target, "<": value < target}[op]
        return {"target": name, "value": value, "threshold": f"{op} {target}", "basis": basis, "pass": ok}

    def ratio_targets(basis: str) -> list[dict]:
        table = ratios["whole_eps" if basis == "whole" else "in_run_eps"]
        fork, spawn = table.get("forkserver", {}), table.get("spawn", {})
        return [
            verdict("forkserver / run_batch", fork.get("vs_run_batch"), TARGET_FORKSERVER_VS_BATCH, ">=", basis),
            verdict(
                f"forkserver / (inprocess x {cores_used} cores)",
                fork.get("vs_inprocess_x_cores"),
                TARGET_FORKSERVER_VS_CEILING,
                ">=",
                basis,
            ),
            verdict("spawn / run_batch", spawn.get("vs_run_batch"), TARGET_SPAWN_VS_BATCH, ">=", basis),
        ]

    targets = ratio_targets("whole") + [
        verdict(
            "CPU efficiency: in-process CPU / forkserver tree CPU per episode",
            ratios["cpu_efficiency_vs_inprocess"].get("forkserver"),
            TARGET_CPU_EFFICIENCY,
            ">=",
            "kernel CPU accounting",
        ),
        verdict(
            "harness own CPU ms/episode (forkserver: harness + workers)",
            modes.get("forkserver", {}).get("harness_cpu_ms_per_episode"),
            TARGET_HARNESS_CPU_MS,
            "<",
            "summary resources",
        ),
        verdict(
            "24-episode slice wall s (forkserver, median)",
            slice_.get("whole_s_median") if slice_ else None,
            TARGET_SLICE_S,
            "<",
            "whole",
        ),
        verdict(
            "24-episode slice / TraceCore scaffold's slice (median wall)",
            slice_.get("vs_scaffold") if slice_ else None,
            TARGET_SLICE_VS_SCAFFOLD,
            "<=",
            "whole",
        ),
    ]
    targets += ratio_targets("in-run")
    return ratios, targets


def _mb(value) -> str:
    return f"{value / 1e6:.1f}" if value else "-"


def _fmt(value, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def markdown(report: dict) -> str:
    host = report["host"]
    lines = [
        f"# tracecore-perf benchmark {report['stamp']}",
        "",
        f"{report['episodes']} episodes of the default scenario; tracecore-perf workers {report['workers']}, "
        f"run_batch workers {report['batch_workers']}, timeout {report['timeout']} s; "
        f"{host['cpu_count']} CPUs ({host['cpu_model']}), Python {host['python']}, tracecore {host['tracecore']}, "
        f"commit {report['git_commit'][:10]}. Load average at start {host['load_avg_start']}, at end {host['load_avg_end']}.",
        "",
        "`whole` = episodes / wall time of the whole command, process start to exit (timed by bench.py). "
        "`in-run` = the mode's own figure: tracecore-perf's summary `throughput_eps` (worker start-up to last row), "
        "or time around `run_batch()` / the in-process loop. Ratios are from this one run. "
        "`tree CPU ms/episode` = CPU time of the command's whole process tree (wait4) per episode; "
        "`CPU efficiency` = the in-process loop's CPU per episode divided by the mode's: the fraction of "
        "the ceiling the mode would reach with every core to itself, much less sensitive to other load "
        "than the throughput ratios (on a shared host one process loses more CPU share than eight).",
        "",
        "| mode | workers | passed/failed | whole s | whole eps | in-run eps | x run_batch (whole) | x in-process (whole) "
        f"| x in-process x{report['cores_used']} cores (whole) | tree CPU ms/episode | CPU efficiency vs in-process "
        "| top-process peak RSS MB | load before |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    whole = report["ratios"]["whole_eps"]
    for name, rec in report["modes"].items():
        r = whole.get(name, {})
        lines.append(
            f"| {name} | {rec['workers']} | {rec.get('passed')}/{rec.get('failed')} "
            f"| {rec['whole_s']:.2f} | {rec['whole_eps']:.2f} "
            f"| {_fmt(rec.get('in_run_eps'))} | {_fmt(r.get('vs_run_batch'))} | {_fmt(r.get('vs_inprocess'))} "
            f"| {_fmt(r.get('vs_inprocess_x_cores'))} | {rec['tree_cpu_ms_per_episode']:.1f} "
            f"| {_fmt(report['ratios']['cpu_efficiency_vs_inprocess'].get(name))} | {_mb(rec.get('top_process_peak_rss_bytes'))} "
            f"| {rec['load_avg_before']} |"
        )
    busy = [name for name, rec in report["modes"].items() if (rec.get("load_avg_before") or [0])[0] > host["cpu_count"]]
    if busy:
        lines += [
            "",
            f"**Busy host**: the 1-minute load exceeded the {host['cpu_count']} CPUs before {', '.join(busy)}; "
            "throughputs and their ratios are indicative only (see the CPU efficiency column).",
        ]
    lines += ["", "Harness figures (from the published summary's `resources`):", ""]
    lines += [
        "| mode | harness+workers CPU ms/episode | harness only | workers only | episode processes CPU ms/episode "
        "| harness peak RSS MB (summary) | harness peak RSS MB (psutil, 50 ms) | episode_s mean | wall_clock_s mean |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ("spawn", "forkserver"):
        rec = report["modes"].get(name)
        if not rec:
            continue
        lines.append(
            f"| {name} | {_fmt(rec.get('harness_cpu_ms_per_episode'))} | {_fmt(rec.get('harness_only_cpu_ms_per_episode'))} "
            f"| {_fmt(rec.get('workers_only_cpu_ms_per_episode'))} | {_fmt(rec.get('episode_cpu_ms_per_episode'))} "
            f"| {_mb(rec.get('harness_peak_rss_bytes'))} | {_mb(rec.get('top_process_peak_rss_bytes'))} "
            f"| {_fmt(rec.get('episode_s_mean'), '.4f')} | {_fmt(rec.get('wall_clock_s_mean'), '.4f')} |"
        )
    if "inprocess" in report["modes"] and report["modes"]["inprocess"].get("run_only_eps"):
        rec = report["modes"]["inprocess"]
        lines += [
            "",
            f"In-process: `run()` alone (without `persist_run`) runs at {rec['run_only_eps']:.2f} episodes/s on one core.",
        ]
    if report.get("slice"):
        s = report["slice"]
        runs = ", ".join(f"{r['whole_s']:.2f}" for r in s["runs"])
        lines += [
            "",
            f"24-episode slice `{s['command']}`: whole-command wall s per run: {runs}; median {_fmt(s['whole_s_median'])}.",
        ]
        batch = [r["in_run_elapsed_s"] for r in s["runs"] if r.get("in_run_elapsed_s") is not None]
        if batch:
            lines += [
                "",
                "Of which the batch (the summary's `elapsed_s`: worker start-up to the last row) per run: "
                + ", ".join(f"{b:.2f}" for b in batch)
                + f"; median {_fmt(sorted(batch)[len(batch) // 2])}. The rest is start-up (interpreter, imports, zygote, "
                "validation, warm-up) and the end (evidence check, metrics, publishing).",
            ]
        if s.get("scaffold"):
            t = s["scaffold"]
            runs = ", ".join(f"{r['whole_s']:.2f}" for r in t["runs"])
            lines += [
                "",
                f"TraceCore's scaffold slice `{t['command']}` (run after each of ours, passed "
                f"{[r['passed'] for r in t['runs']]}): whole-command wall s per run: {runs}; median "
                f"{_fmt(t['whole_s_median'])}; ours / theirs {_fmt(s['vs_scaffold'], '.3f')}.",
            ]
    lines += ["", "| target | value | threshold | basis | verdict |", "|---|---|---|---|---|"]
    for t in report["targets"]:
        verdict = "n/a" if t["pass"] is None else ("PASS" if t["pass"] else "FAIL")
        lines.append(f"| {t['target']} | {_fmt(t['value'], '.3f')} | {t['threshold']} | {t['basis']} | {verdict} |")
    return "\n".join(lines) + "\n"


def host_info(python: str) -> dict:
    import platform

    from tracecore_perf.run.hostinfo import cpu_model

    try:
        tracecore = subprocess.run(
            [python, "-c", "from importlib.metadata import version; print(version('tracecore'))"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        tracecore = "unknown"
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "tracecore": tracecore or "unknown",
        "load_avg_start": load_avg(),
    }


def git_commit() -> str:
    done = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=1000, help="episodes per mode (default 1000)")
    parser.add_argument("--workers", type=int, default=8, help="tracecore-perf workers (default 8)")
    parser.add_argument("--batch-workers", type=int, default=8, help="run_batch workers (default 8)")
    parser.add_argument("--timeout", type=int, default=180, help="per-episode timeout, every mode (default 180)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    parser.add_argument("--slice-repeats", type=int, default=3, help="times to run the 24-episode slice (0 skips it)")
    parser.add_argument(
        "--out-dir", type=Path, default=REPO / "deliverables" / "perf" / "bench", help="where the JSON and markdown go"
    )
    parser.add_argument("--python", default=sys.executable, help="interpreter for every mode (default this one)")
    parser.add_argument(
        "--tracecore-scaffold",
        type=Path,
        help="TraceCore's scripts/perf_harness.py (from a checkout of the installed version): its slice runs after each of ours",
    )
    parser.add_argument("--keep-work", action="store_true", help="keep each mode's scratch directory")
    parser.add_argument(
        "--fork-floor",
        type=int,
        default=0,
        metavar="N",
        help="also run scripts/fork_cost.py over N episodes: an episode in a child forked from a warmed process, "
        "the floor of one fork per episode, against the forkserver mode's tree CPU per episode (default 0: skip)",
    )
    parser.add_argument(
        "--cost",
        action="store_true",
        help="also count, under Valgrind, the instructions per episode of TraceCore alone, the episode process, "
        "the workers and the harness (scripts/episode_cost.py; a few minutes)",
    )
    args = parser.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(args.modes) - set(MODES)
    if args.tracecore_scaffold and not args.tracecore_scaffold.is_file():
        parser.error(f"--tracecore-scaffold: no such file: {args.tracecore_scaffold}")
    if args.tracecore_scaffold:
        args.tracecore_scaffold = args.tracecore_scaffold.resolve()
    if unknown or args.episodes < 1 or args.workers < 1:
        parser.error(f"bad --modes {sorted(unknown)}" if unknown else "--episodes and --workers must be at least 1")
    return args


def main(argv: list[str]) -> int:
    if argv and argv[0] == "_child":
        child_main(argv[1:])
        return 0
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    from tracecore_perf.run.scenario import DEFAULT_SCENARIO

    rows = [{"agent": r.agent, "task_ref": r.task_ref, "seed": r.seed} for r in DEFAULT_SCENARIO]
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    cores_used = min(args.workers, os.cpu_count() or 1)
    host = host_info(args.python)
    work = Path(tempfile.mkdtemp(prefix="tracecore-bench-"))
    modes: dict[str, dict] = {}
    try:
        for mode in args.modes:
            print(f"[bench] {mode}: {args.episodes} episodes (load {load_avg()})", file=sys.stderr, flush=True)
            modes[mode] = run_mode(mode, args, rows, work)
            rec = modes[mode]
            print(
                f"[bench] {mode}: exit {rec['returncode']}, {rec['whole_s']:.2f} s whole, {rec['whole_eps']:.2f} eps whole, "
                f"{_fmt(rec.get('in_run_eps'))} eps in-run",
                file=sys.stderr,
                flush=True,
            )
        slice_ = None
        if args.slice_repeats > 0:
            print(f"[bench] slice x{args.slice_repeats} (load {load_avg()})", file=sys.stderr, flush=True)
            slice_ = run_slice(args, work)
        fork_floor = None
        if args.fork_floor > 0:
            print(f"[bench] fork floor: {args.fork_floor} episodes (load {load_avg()})", file=sys.stderr, flush=True)
            done = subprocess.run(
                [args.python, str(REPO / "scripts" / "fork_cost.py"), "--episodes", str(args.fork_floor), "--json"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            fork_floor = json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr.strip()[-300:]}
        cost = None
        if args.cost:
            sys.path.insert(0, str(REPO / "scripts"))
            import episode_cost

            cost = episode_cost.measure(args.python, say=lambda line: print(line, file=sys.stderr, flush=True))
    finally:
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    host["load_avg_end"] = load_avg()
    ratios, targets = ratios_and_targets(modes, cores_used, slice_)
    tree = modes.get("forkserver", {}).get("tree_cpu_ms_per_episode")
    if fork_floor and "forked_ms" in fork_floor and tree:
        # the floor: the episode in a fresh fork (the child's CPU) and the fork() that made it
        floor_ms = fork_floor["forked_ms"] + fork_floor["fork_parent_ms"]
        ratios["forkserver_vs_fork_floor"] = round(floor_ms / tree, 3)
        value = ratios["forkserver_vs_fork_floor"]
        targets.append(
            {
                "target": "fork floor / forkserver tree CPU per episode",
                "value": value,
                "threshold": f">= {TARGET_TREE_VS_FORK_FLOOR}",
                "basis": f"fork_cost.py, {fork_floor['episodes']} episodes",
                "pass": value >= TARGET_TREE_VS_FORK_FLOOR,
            }
        )
    report = {
        "stamp": stamp,
        "episodes": args.episodes,
        "workers": args.workers,
        "batch_workers": args.batch_workers,
        "timeout": args.timeout,
        "cores_used": cores_used,
        "git_commit": git_commit(),
        "host": host,
        "modes": modes,
        "slice": slice_,
        "ratios": ratios,
        "targets": targets,
        "cost": cost,
        "fork_floor": fork_floor,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    json_path = args.out_dir / f"bench-{stamp}.json"
    md_path = args.out_dir / f"bench-{stamp}.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    if cost is not None:
        text += "\n" + episode_cost.markdown(cost)
    md_path.write_text(text)
    print(text)
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    failed_modes = [m for m, r in modes.items() if r["returncode"] not in (0,) or r.get("failed")]
    if failed_modes:
        print(f"[bench] modes with failed episodes or a non-zero exit: {failed_modes}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
