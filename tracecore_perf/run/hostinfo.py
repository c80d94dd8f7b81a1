"""Host context and the machine id recorded in every manifest.

The machine id is a fingerprint of the hardware (CPU model, logical core count, memory
rounded to whole GiB, OS, architecture): the same for every run, matrix cell and history
entry on one machine. The Python and TraceCore a run used are the interpreter's own fields.
"""

from __future__ import annotations

import os
import platform
import socket
import time
from pathlib import Path

import psutil

from tracecore_perf.models import HARDWARE_FIELDS, HostContext, fingerprint

# A host is "quiet" when other processes leave most of the machine to the run. The CPU busy
# reading is the direct measure; the 1-minute load average lags (it still carries the last
# run for a minute), so it only flags a host whose every core has had a runnable queue.
QUIET_LOAD_PER_CORE = 1.0
QUIET_CPU_BUSY_PERCENT = 25.0


class BusyProbe:
    """How busy *other* processes keep the CPUs over a window, e.g. while the harness
    validates its input: all CPU time spent on the host minus our own and our finished
    children's, over the wall time of the window times the core count."""

    def __init__(self, own_processes: tuple[int, ...] = ()) -> None:
        """``own_processes``: live processes of ours already started (a zygote started
        before the window opened): only their CPU time from now on counts."""
        self.start_wall = time.monotonic()
        self.start_busy = _host_busy_s()
        self.start_own = _own_cpu_s()
        self.start_processes = {pid: _process_cpu_s(pid) for pid in own_processes}

    def other_busy_percent(self, own_processes: tuple[int, ...] = ()) -> float | None:
        """``own_processes``: live processes we started (the zygote), whose CPU time, and
        their reaped children's, is ours too."""
        wall = time.monotonic() - self.start_wall
        cores = psutil.cpu_count(logical=True) or 1
        if wall < 0.05:
            return None
        ours = _own_cpu_s() - self.start_own
        for pid in own_processes:
            ours += _process_cpu_s(pid) - self.start_processes.get(pid, 0.0)
        others = (_host_busy_s() - self.start_busy) - ours
        return round(min(max(others / (wall * cores) * 100, 0.0), 100.0), 1)


def _process_cpu_s(pid: int) -> float:
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return t.user + t.system + t.children_user + t.children_system


def _host_busy_s() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def host_context(busy: BusyProbe | None = None, own_processes: tuple[int, ...] = ()) -> HostContext:
    """Read the host and judge whether it is quiet enough for a trustworthy run."""
    cores = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    busy_percent = busy.other_busy_percent(own_processes) if busy else None
    reasons = []
    if load is not None and load[0] / cores > QUIET_LOAD_PER_CORE:
        reasons.append(f"1-minute load {load[0]} on {cores} cores")
    if busy_percent is not None and busy_percent > QUIET_CPU_BUSY_PERCENT:
        reasons.append(f"other processes kept the CPUs {busy_percent:.0f}% busy before the run")
    return HostContext(
        cpu_model=cpu_model(),
        logical_cores=cores,
        memory_total_bytes=psutil.virtual_memory().total,
        os=f"{platform.system()} {platform.release()}",
        kernel=platform.version(),
        machine=platform.machine(),
        hostname=socket.gethostname(),
        load_avg_start=load,
        cpu_busy_percent_start=busy_percent,
        quiet=not reasons,
        quiet_reason="; ".join(reasons) or None,
    )


def machine_id(host: HostContext) -> tuple[str, dict]:
    """The machine id (a short stable fingerprint of the hardware), and what it hashes."""
    fields = {
        "cpu_model": host.cpu_model,
        "logical_cores": host.logical_cores,
        "memory_gib": round(host.memory_total_bytes / 2**30),
        "os": platform.system(),
        "machine": host.machine,
    }
    assert tuple(fields) == HARDWARE_FIELDS
    return fingerprint(fields), fields
