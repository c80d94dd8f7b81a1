"""Throughput and overhead benchmark: tracecore-perf against TraceCore's own batch runner.

One invocation, one machine, the default scenario (seed = row seed + episode index) at N
episodes through five modes, each in its own subprocess started cold and measured alike (wall
time of the whole command, CPU of its whole process tree from the kernel via wait4):

  run_batch   TraceCore's ``agent_bench.runner.batch.run_batch(jobs, workers=8, timeout=180)``
  spawn       ``python -m tracecore_perf --isolation spawn --workers W``
  forkserver  ``python -m tracecore_perf --isolation forkserver --workers W``
  inprocess   a plain loop calling ``agent_bench.runner.runner.run()`` (and ``persist_run``,
              as every other mode does) in one process: no isolation, the ceiling per core
  forkfloor   ``scripts/fork_floor.py``: one warm-up episode per row, then one plain fork per
              episode running ``run()`` + ``persist_run()``; no harness, nothing of
              tracecore_perf: the floor of one fresh process per episode, measured apart

With ``--rounds R`` (default 3) the selected modes run R times interleaved (A B C A B C ...)
and each figure of a mode is the median of its rounds, so drift in the host's load falls on
every mode alike; the ratios are taken from those medians.

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
    python scripts/bench.py --episodes 8 --slice-repeats 0 --rounds 1 --out-dir /tmp/b   # smoke
    python scripts/bench.py --episodes 300 --modes forkserver,inprocess,forkfloor --slice-repeats 0
    python scripts/bench.py --tracecore-scaffold ../tracecore/scripts/perf_harness.py

With ``--instruction-slice R`` it measures only what instruction mode costs: the everyday
slice natively and with ``--instructions`` (each scenario row's first ``--counted-per-row``
episodes counted, the default), R rounds interleaved (native, counted, native, counted ...),
each timed from process start to exit; the counted run's wall time split into its start-up
under Valgrind (process start to ``run.start``: the zygote under Valgrind started and warmed,
its native twin beside it, validation), its episodes (the summary's ``elapsed_s``: workers
started, counted episodes and the native ones) and the rest (metrics, publishing); the ratio of
the medians is judged against ``TARGET_INSTRUCTIONS_VS_NATIVE``::

    python scripts/bench.py --instruction-slice 3

Figures from a shared or busy host are indicative only; the load average is recorded
before each measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODES = ("run_batch", "spawn", "forkserver", "inprocess", "forkfloor")
PARTS = ("harness", "workers", "zygote", "episodes")  # the forkserver tree, as its summary splits it
SLICE_ARGS = ["--episodes", "24", "--workers", "4", "--strict-spec", "--isolation", "forkserver"]
SCAFFOLD_SLICE_ARGS = ["--episodes", "24", "--workers", "4", "--strict-spec"]
SAMPLE_EVERY_S = 0.05

# The targets (2-core machine, ratios from one run).
TARGET_FORKSERVER_VS_BATCH = 8.0
TARGET_FORKSERVER_VS_CEILING = 0.60
TARGET_CPU_EFFICIENCY = 0.55  # ceiling CPU per episode / forkserver tree CPU per episode
TARGET_SLICE_VS_SCAFFOLD = 0.30  # our slice's wall / TraceCore's scaffold's, same flags
TARGET_SPAWN_VS_BATCH = 1.3
TARGET_HARNESS_CPU_MS = 4.0  # harness + workers, per episode
TARGET_SLICE_S = 1.5
TARGET_TREE_VS_FORK_FLOOR = 0.85  # fork floor CPU per episode / forkserver tree CPU per episode
TARGET_INSTRUCTIONS_VS_NATIVE = 10.0  # the slice's wall with --instructions / natively (--instruction-slice)


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


# The in-process ceiling and the fork floor are script files of their own (see their docstrings
# for why not ``-c``); each imports agent_bench only.
INPROCESS_CEILING = Path(__file__).resolve().with_name("inprocess_ceiling.py")
FORK_FLOOR = Path(__file__).resolve().with_name("fork_floor.py")
SCRIPT_MODES = {"inprocess": INPROCESS_CEILING, "forkfloor": FORK_FLOOR}


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
        "tree_user_s": round(usage.ru_utime, 4),
        "tree_sys_s": round(usage.ru_stime, 4),
        "tree_minor_faults": usage.ru_minflt,
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
    if mode in ("run_batch", *SCRIPT_MODES):
        workers = args.batch_workers if mode == "run_batch" else 1
        spec = {"rows": rows, "episodes": args.episodes, "batch_workers": args.batch_workers, "timeout": args.timeout}
        result_path = cwd / "result.json"
        if mode == "run_batch":
            cmd = [python, str(Path(__file__).resolve()), "_child", json.dumps(spec), str(result_path)]
        else:
            cmd = [python, str(SCRIPT_MODES[mode]), json.dumps(spec), str(result_path)]
        done = timed(cmd, cwd)
        inner = json.loads(result_path.read_text()) if result_path.exists() else {}
        record = {
            "mode": mode,
            "workers": workers,
            **{k: v for k, v in done.items() if k not in ("stdout",)},
            "passed": inner.get("passed"),
            "failed": inner.get("failed"),
            "in_run_elapsed_s": round(inner["in_run_elapsed_s"], 4) if inner else None,
            "in_run_source": {
                "run_batch": "time around run_batch()",
                "inprocess": "time around the module-level loop (run + persist_run)",
                "forkfloor": "time around the module-level fork loop (warm-up excluded)",
            }[mode],
        }
        if mode == "inprocess" and inner:
            record["run_only_s"] = round(inner["run_only_s"], 4)
            record["run_only_eps"] = round(args.episodes / inner["run_only_s"], 3) if inner["run_only_s"] else None
        if mode == "forkfloor" and inner:
            record["floor"] = {"children": inner["children"], "parent": inner["parent"], "parent_phases": inner["parent_phases"]}
            zero = {"user_s": 0.0, "sys_s": 0.0, "minor_faults": 0}
            children = {k: inner["children"][k] for k in ("user_s", "sys_s", "minor_faults")}
            # the floor's parent stands where the harness does (start-up, imports, warm-up, forking);
            # it has no workers and no zygote (its own warmed process is what it forks)
            record["raw_parts"] = {"harness": inner["parent"], "workers": zero, "zygote": zero, "episodes": children}
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
    if "raw_parts" in record:
        record["parts_per_episode"] = parts_per_episode(record.pop("raw_parts"), record, n)
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
        "raw_parts": resources.get("parts")
        or {
            # before the summary published its parts: CPU totals only, no user/sys/fault split, no zygote
            "harness": {"cpu_s": resources["harness_cpu_s"]},
            "workers": {"cpu_s": resources["workers_cpu_s"]},
            "zygote": None,
            "episodes": {"cpu_s": resources["episode_cpu_s_total"]},
        },
        "parts_source": "summary resources.parts" if resources.get("parts") else "summary CPU totals (no parts published)",
        "episode_s_mean": summary["episode_s"]["mean"],
        "wall_clock_s_mean": summary["wall_clock_s"]["mean"],
        "wall_clock_s_p95": summary["wall_clock_s"]["p95"],
    }


def parts_per_episode(raw: dict, record: dict, n: int) -> dict:
    """Per episode: user ms, sys ms, CPU ms and minor faults of each part of a mode's tree
    (None where the source does not split it), and ``rest``: the tree (wait4) less the parts,
    what no part accounts for (interpreter start-up and imports of processes no part counts,
    and whatever runs after a part's own accounting closed)."""
    out: dict[str, dict] = {}
    for name in PARTS:
        part = raw.get(name)
        if not part:
            out[name] = {"user_ms": None, "sys_ms": None, "cpu_ms": None, "minor_faults": None}
            continue
        user, sys_ = part.get("user_s"), part.get("sys_s")
        cpu = part["cpu_s"] if "cpu_s" in part else (user or 0.0) + (sys_ or 0.0)
        faults = part.get("minor_faults")
        out[name] = {
            "user_ms": None if user is None else round(user * 1000 / n, 4),
            "sys_ms": None if sys_ is None else round(sys_ * 1000 / n, 4),
            "cpu_ms": round(cpu * 1000 / n, 4),
            "minor_faults": None if faults is None else round(faults / n, 2),
        }
    known = [p for p in out.values() if p["cpu_ms"] is not None]
    every_fault = all(p["minor_faults"] is not None for p in out.values())
    out["rest"] = {
        "user_ms": round(record["tree_user_s"] * 1000 / n - sum(p["user_ms"] for p in known), 4)
        if all(p["user_ms"] is not None for p in known)
        else None,
        "sys_ms": round(record["tree_sys_s"] * 1000 / n - sum(p["sys_ms"] for p in known), 4)
        if all(p["sys_ms"] is not None for p in known)
        else None,
        "cpu_ms": round(record["tree_cpu_s"] * 1000 / n - sum(p["cpu_ms"] for p in known), 4),
        "minor_faults": round(record["tree_minor_faults"] / n - sum(p["minor_faults"] for p in out.values()), 2)
        if every_fault
        else None,
    }
    return out


def _median_of(values: list):
    """The median of the rounds' values: numbers give a number, dicts a dict of medians, anything
    else (or a mix with None) the first round's value."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        median = statistics.median(values)
        return int(median) if all(isinstance(v, int) for v in values) and median == int(median) else round(median, 6)
    if all(isinstance(v, dict) for v in values):
        keys = values[0].keys()
        return {k: _median_of([v.get(k) for v in values]) for k in keys}
    return values[0]


def median_record(rounds: list[dict]) -> dict:
    """A mode's record over its rounds: each figure the median of the rounds'; the exit code,
    passed and failed the worst round's; the rounds' own key figures kept under ``rounds``."""
    record = {k: _median_of([r.get(k) for r in rounds]) for k in rounds[0]}
    record["returncode"] = next((r["returncode"] for r in rounds if r["returncode"] != 0), 0)
    record["passed"] = min((r.get("passed") or 0) for r in rounds) if all(r.get("passed") is not None for r in rounds) else None
    record["failed"] = max((r.get("failed") or 0) for r in rounds) if rounds[0].get("failed") is not None else None
    record["stderr_tail"] = next((r["stderr_tail"] for r in rounds if r["returncode"] != 0), rounds[-1]["stderr_tail"])
    record["rounds"] = [
        {
            "whole_s": r["whole_s"],
            "tree_cpu_ms_per_episode": r["tree_cpu_ms_per_episode"],
            "load_avg_before": r["load_avg_before"],
            "returncode": r["returncode"],
        }
        for r in rounds
    ]
    return record


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


def _log_time(stderr: str, event: str) -> float | None:
    """The epoch time of the first ``event`` in a run's JSON-lines log on stderr (``--log-format json``)."""
    for line in stderr.splitlines():
        if f'"{event}"' not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == event and entry.get("timestamp"):
            return datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00")).timestamp()
    return None


def instruction_slice(args: argparse.Namespace, work: Path) -> dict:
    """The everyday slice natively and with ``--instructions``, ``args.instruction_slice``
    rounds interleaved; each counted run split into start-up under Valgrind, episodes, rest."""
    native_runs, counted_runs = [], []
    counted_flags = [] if args.counted_per_row is None else ["--counted-per-row", str(args.counted_per_row)]
    for r in range(1, args.instruction_slice + 1):
        for counted in (False, True):
            cwd = Path(tempfile.mkdtemp(prefix="islice-", dir=work))
            cmd = [args.python, "-m", "tracecore_perf", *SLICE_ARGS, "--output-dir", str(cwd / "out"), "--json", "--no-progress"]
            cmd += ["--log-format", "json"] + (["--instructions", *counted_flags] if counted else [])
            began = time.time()
            done = timed(cmd, cwd, sample_pid=False)
            stderr = (cwd / "stderr.txt").read_text(errors="replace")
            figures = _harness_figures(done["stdout"])
            record = {
                "whole_s": done["whole_s"],
                "returncode": done["returncode"],
                "passed": figures.get("passed"),
                "episodes_s": figures.get("in_run_elapsed_s"),
                "load_avg_before": done["load_avg_before"],
            }
            started = _log_time(stderr, "run.start")
            if started is not None and record["episodes_s"] is not None:
                record["startup_s"] = round(started - began, 3)
                record["rest_s"] = round(done["whole_s"] - record["startup_s"] - record["episodes_s"], 3)
            if counted:
                try:
                    series = json.loads(next((cwd / "out").glob("perf-series-*.json")).read_text())
                    record["counted_episodes"] = sum(row.get("instructions") is not None for row in series)
                except (StopIteration, ValueError, OSError):
                    record["counted_episodes"] = None
            (counted_runs if counted else native_runs).append(record)
            what = "counted" if counted else "native"
            print(f"[bench] instruction slice round {r}/{args.instruction_slice} {what}: {record}", file=sys.stderr, flush=True)
            if not args.keep_work:
                shutil.rmtree(cwd, ignore_errors=True)

    def median(runs: list[dict], key: str) -> float | None:
        values = [run[key] for run in runs if run.get(key) is not None]
        return round(statistics.median(values), 3) if values else None

    native, counted = median(native_runs, "whole_s"), median(counted_runs, "whole_s")
    ratio = round(counted / native, 2) if native and counted else None
    return {
        "command_native": "python -m tracecore_perf " + " ".join(SLICE_ARGS),
        "command_counted": "python -m tracecore_perf " + " ".join([*SLICE_ARGS, "--instructions", *counted_flags]),
        "native_runs": native_runs,
        "counted_runs": counted_runs,
        "native_whole_s_median": native,
        "counted_whole_s_median": counted,
        "counted_startup_s_median": median(counted_runs, "startup_s"),
        "counted_episodes_s_median": median(counted_runs, "episodes_s"),
        "counted_rest_s_median": median(counted_runs, "rest_s"),
        "native_startup_s_median": median(native_runs, "startup_s"),
        "native_episodes_s_median": median(native_runs, "episodes_s"),
        "ratio": ratio,
        "target": TARGET_INSTRUCTIONS_VS_NATIVE,
        "met": ratio is not None and ratio <= TARGET_INSTRUCTIONS_VS_NATIVE,
    }


def instruction_markdown(report: dict) -> str:
    data, host = report["instruction_slice"], report["host"]
    lines = [
        f"# Instruction mode against native: the everyday slice ({report['stamp']})",
        "",
        f"Host: {host.get('cpu_model')}, {host.get('cpu_count')} cores; commit {report['git_commit']}; "
        f"{len(data['native_runs'])} rounds interleaved; load average {host.get('load_avg_start')} at the start, "
        f"{host.get('load_avg_end')} at the end.",
        "",
        f"Commands: `{data['command_native']}` against `{data['command_counted']}`.",
        "",
        "| | native | `--instructions` |",
        "|---|---|---|",
        f"| whole command, median | {_fmt(data['native_whole_s_median'])} s | {_fmt(data['counted_whole_s_median'])} s |",
        f"| start-up (to `run.start`) | {_fmt(data['native_startup_s_median'])} s | "
        f"{_fmt(data['counted_startup_s_median'])} s (zygote under Valgrind started and warmed) |",
        f"| episodes (`elapsed_s`) | {_fmt(data['native_episodes_s_median'])} s | {_fmt(data['counted_episodes_s_median'])} s "
        f"({data['counted_runs'][0].get('counted_episodes')} counted) |",
        f"| rest (metrics, publishing) | | {_fmt(data['counted_rest_s_median'])} s |",
        "",
        f"Ratio of the medians: **x{_fmt(data['ratio'])}** (target at most x{data['target']:g}: "
        f"{'met' if data['met'] else 'NOT met'}).",
        "",
    ]
    return "\n".join(lines)


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
    # The honest floor: one plain fork per episode, no harness (scripts/fork_floor.py), measured
    # as its own cold command with the same tree accounting, in the same rounds.
    ratios["forkserver_vs_fork_floor"] = _tree_ratio(modes.get("forkfloor"), modes.get("forkserver"))
    ratios["per_round"] = [
        {
            "cpu_efficiency_forkserver": _tree_ratio(_round(modes.get("inprocess"), i), _round(modes.get("forkserver"), i)),
            "forkserver_vs_fork_floor": _tree_ratio(_round(modes.get("forkfloor"), i), _round(modes.get("forkserver"), i)),
        }
        for i in range(max((len(rec.get("rounds", [])) for rec in modes.values()), default=0))
    ]

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

    rounds = max((len(rec.get("rounds", [])) for rec in modes.values()), default=1)
    cpu_basis = f"kernel CPU accounting, median of {rounds} round{'s' if rounds != 1 else ''}"
    targets = ratio_targets("whole") + [
        verdict(
            "CPU efficiency: in-process CPU / forkserver tree CPU per episode",
            ratios["cpu_efficiency_vs_inprocess"].get("forkserver"),
            TARGET_CPU_EFFICIENCY,
            ">=",
            cpu_basis,
        ),
        verdict(
            "fork floor tree CPU / forkserver tree CPU per episode",
            ratios["forkserver_vs_fork_floor"],
            TARGET_TREE_VS_FORK_FLOOR,
            ">=",
            cpu_basis,
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


def _round(rec: dict | None, i: int) -> dict | None:
    rounds = (rec or {}).get("rounds") or []
    return rounds[i] if i < len(rounds) else None


def _tree_ratio(reference: dict | None, measured: dict | None) -> float | None:
    """The reference's tree CPU per episode over the measured mode's: 1.0 = as cheap as it."""
    ref = (reference or {}).get("tree_cpu_ms_per_episode")
    got = (measured or {}).get("tree_cpu_ms_per_episode")
    return round(ref / got, 3) if ref and got else None


def _loads(rec: dict) -> str:
    """The 1-minute load before each round of a mode."""
    loads = [(r.get("load_avg_before") or [None])[0] for r in rec.get("rounds") or [rec]]
    return " / ".join(_fmt(x) for x in loads)


def _rounds_lines(report: dict) -> list[str]:
    """Each round's tree CPU per episode and wall time, and the CPU ratios of that round alone:
    how far the host's drift moved them."""
    modes = report["modes"]
    if report.get("rounds", 1) < 2:
        return []
    lines = [
        "",
        "Per round (tree CPU ms/episode, whole s), in the order run:",
        "",
        "| round | " + " | ".join(modes) + " | CPU efficiency (forkserver) | floor / forkserver tree |",
        "|---|" + "---|" * (len(modes) + 2),
    ]
    for i, ratios in enumerate(report["ratios"].get("per_round", [])):
        cells = []
        for rec in modes.values():
            r = _round(rec, i)
            cells.append("-" if r is None else f"{r['tree_cpu_ms_per_episode']:.2f} ms, {r['whole_s']:.2f} s")
        lines.append(
            f"| {i + 1} | "
            + " | ".join(cells)
            + f" | {_fmt(ratios.get('cpu_efficiency_forkserver'), '.3f')} "
            + f"| {_fmt(ratios.get('forkserver_vs_fork_floor'), '.3f')} |"
        )
    return lines


def _gap_lines(report: dict) -> list[str]:
    """Where the forkserver tree's CPU goes against the fork floor's, part by part, per episode."""
    fork, floor = report["modes"].get("forkserver"), report["modes"].get("forkfloor")
    if not fork or not floor or "parts_per_episode" not in fork or "parts_per_episode" not in floor:
        return []
    a, b = fork["parts_per_episode"], floor["parts_per_episode"]

    def cells(part: dict) -> str:
        return f"{_fmt(part['user_ms'])} | {_fmt(part['sys_ms'])} | {_fmt(part['cpu_ms'])} | {_fmt(part['minor_faults'], '.0f')}"

    names = {
        "harness": "harness process (floor: its one process: start-up, imports, warm-up, forking)",
        "workers": "workers (floor: none)",
        "zygote": "zygote (floor: none, it forks its own warmed process)",
        "episodes": "episode processes (floor: the forked children)",
        "rest": "rest: tree less the parts (start-up and imports no part counts, what runs after a part's accounting)",
    }
    lines = [
        "",
        f"Where the gap is: the forkserver tree against the fork floor, per episode (medians of the rounds; "
        f"forkserver parts from {fork.get('parts_source', 'the summary')}; '-' where the source gives no split):",
        "",
        "| part | forkserver user ms | sys ms | CPU ms | minor faults | floor user ms | sys ms | CPU ms | minor faults "
        "| forkserver - floor CPU ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in (*PARTS, "rest"):
        diff = None if a[key]["cpu_ms"] is None or b[key]["cpu_ms"] is None else a[key]["cpu_ms"] - b[key]["cpu_ms"]
        lines.append(f"| {names[key]} | {cells(a[key])} | {cells(b[key])} | {_fmt(diff)} |")
    tree = {
        name: {
            "user_ms": rec["tree_user_s"] * 1000 / rec["episodes"],
            "sys_ms": rec["tree_sys_s"] * 1000 / rec["episodes"],
            "cpu_ms": rec["tree_cpu_ms_per_episode"],
            "minor_faults": rec["tree_minor_faults"] / rec["episodes"],
        }
        for name, rec in (("forkserver", fork), ("forkfloor", floor))
    }
    lines.append(
        f"| **whole tree (wait4)** | {cells(tree['forkserver'])} | {cells(tree['forkfloor'])} "
        f"| {_fmt(tree['forkserver']['cpu_ms'] - tree['forkfloor']['cpu_ms'])} |"
    )
    children = floor.get("floor", {}).get("children", {})
    phases = floor.get("floor", {}).get("parent_phases", {})
    if children:
        ms = {k: (children.get(k) or 0) * 1000 for k in ("cpu_s_median", "user_s_median", "sys_s_median")}
        lines += [
            "",
            f"Fork floor, one child: median {_fmt(ms['cpu_s_median'])} ms CPU "
            f"({_fmt(ms['user_s_median'])} user, {_fmt(ms['sys_s_median'])} sys), "
            f"{_fmt(children.get('minor_faults_median'), '.0f')} minor faults. Its parent, whole run: "
            + ", ".join(f"{name} {_fmt((p['user_s'] + p['sys_s']) * 1000, '.1f')} ms" for name, p in phases.items() if p)
            + ".",
        ]
    return lines


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
        "or time around `run_batch()` / the in-process loop / the fork loop. "
        "`tree CPU ms/episode` = CPU time of the command's whole process tree (wait4) per episode; "
        "`CPU efficiency` = the in-process loop's CPU per episode divided by the mode's: the fraction of "
        "the ceiling the mode would reach with every core to itself, much less sensitive to other load "
        "than the throughput ratios (on a shared host one process loses more CPU share than eight). "
        f"Every figure of a mode is the median of its {report['rounds']} round(s), run interleaved (A B C A B C ...); "
        "the ratios are taken from the medians. `forkfloor` = scripts/fork_floor.py: one plain fork per episode "
        "from a process warmed by one episode per row, no harness; its tree CPU over forkserver's is the floor ratio.",
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
            f"| {_loads(rec)} |"
        )
    busy = [
        name
        for name, rec in report["modes"].items()
        if any((r.get("load_avg_before") or [0])[0] > host["cpu_count"] for r in rec.get("rounds") or [rec])
    ]
    if busy:
        lines += [
            "",
            f"**Busy host**: the 1-minute load exceeded the {host['cpu_count']} CPUs before {', '.join(busy)}; "
            "throughputs and their ratios are indicative only (see the CPU efficiency column).",
        ]
    lines += _rounds_lines(report)
    lines += _gap_lines(report)
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
        "--rounds",
        type=int,
        default=3,
        help="run the selected modes this many times, interleaved (A B C A B C ...), and report each mode's medians (default 3)",
    )
    parser.add_argument(
        "--instruction-slice",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="measure only the slice natively against --instructions, this many rounds interleaved, and the ratio",
    )
    parser.add_argument(
        "--counted-per-row",
        type=int,
        metavar="K",
        help="with --instruction-slice: the counted runs' --counted-per-row (default: the run's own default)",
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
    if args.instruction_slice < 0:
        parser.error("--instruction-slice must be at least 0")
    if unknown or args.episodes < 1 or args.workers < 1 or args.rounds < 1:
        parser.error(f"bad --modes {sorted(unknown)}" if unknown else "--episodes, --workers and --rounds must be at least 1")
    return args


def main(argv: list[str]) -> int:
    if argv and argv[0] == "_child":
        child_main(argv[1:])
        return 0
    args = parse_args(argv)
    if args.instruction_slice:
        return main_instruction_slice(args)
    sys.path.insert(0, str(REPO))
    from tracecore_perf.run.scenario import DEFAULT_SCENARIO

    rows = [{"agent": r.agent, "task_ref": r.task_ref, "seed": r.seed} for r in DEFAULT_SCENARIO]
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    cores_used = min(args.workers, os.cpu_count() or 1)
    host = host_info(args.python)
    work = Path(tempfile.mkdtemp(prefix="tracecore-bench-"))
    rounds: dict[str, list[dict]] = {mode: [] for mode in args.modes}
    try:
        for r in range(1, args.rounds + 1):  # interleaved: A B C A B C ...
            for mode in args.modes:
                print(
                    f"[bench] round {r}/{args.rounds} {mode}: {args.episodes} episodes (load {load_avg()})",
                    file=sys.stderr,
                    flush=True,
                )
                rec = run_mode(mode, args, rows, work)
                rounds[mode].append(rec)
                print(
                    f"[bench] round {r}/{args.rounds} {mode}: exit {rec['returncode']}, {rec['whole_s']:.2f} s whole, "
                    f"{rec['whole_eps']:.2f} eps whole, {_fmt(rec.get('in_run_eps'))} eps in-run, "
                    f"{rec['tree_cpu_ms_per_episode']:.2f} ms tree CPU/episode",
                    file=sys.stderr,
                    flush=True,
                )
        modes = {mode: median_record(recs) for mode, recs in rounds.items()}
        slice_ = None
        if args.slice_repeats > 0:
            print(f"[bench] slice x{args.slice_repeats} (load {load_avg()})", file=sys.stderr, flush=True)
            slice_ = run_slice(args, work)
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
    report = {
        "stamp": stamp,
        "episodes": args.episodes,
        "workers": args.workers,
        "batch_workers": args.batch_workers,
        "timeout": args.timeout,
        "rounds": args.rounds,
        "cores_used": cores_used,
        "git_commit": git_commit(),
        "host": host,
        "modes": modes,
        "slice": slice_,
        "ratios": ratios,
        "targets": targets,
        "cost": cost,
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


def main_instruction_slice(args: argparse.Namespace) -> int:
    """``--instruction-slice R``: the slice natively against ``--instructions``, and nothing else."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    host = host_info(args.python)
    work = Path(tempfile.mkdtemp(prefix="tracecore-bench-"))
    try:
        data = instruction_slice(args, work)
    finally:
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    host["load_avg_end"] = load_avg()
    report = {"stamp": stamp, "git_commit": git_commit(), "host": host, "instruction_slice": data}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    json_path = args.out_dir / f"bench-instructions-{stamp}.json"
    md_path = args.out_dir / f"bench-instructions-{stamp}.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    text = instruction_markdown(report)
    md_path.write_text(text)
    print(text)
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    runs = data["native_runs"] + data["counted_runs"]
    return 0 if all(run["returncode"] == 0 for run in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
