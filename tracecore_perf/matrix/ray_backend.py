"""The Ray backend: each cell is a Ray task that needs one ``perf_host`` resource, so a node
started with ``ray start --resources '{"perf_host": 1}'`` runs one cell at a time. The only
module of ours that imports Ray, and only when ``--ray`` is given.

On its node the task runs the harness as a subprocess (``python -m tracecore_perf run ...
--json``) with the node's own interpreter and environment, so the cell gets everything a run
gets (child subreaper, its own signal handling, the run's cleanup), and dies with the task's
worker (``PR_SET_PDEATHSIG``). It ships back the cell's whole output folder (the run directory
and the published ``perf-*-<stamp>.json``) as one archive, with the node's id, hostname, host
fingerprint and the cell's start and finish times; the driver unpacks it under
``<output>/matrix-<stamp>/<cell>/``, the layout a local run leaves.

A node lost mid-cell: Ray runs the task again elsewhere (``max_retries``, system failures
only); when the retries are used up the cell is ``failed`` with Ray's reason, and ``matrix
--resume`` reruns it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from tracecore_perf.errors import ClusterUnreachable, UsageError
from tracecore_perf.matrix import cells as cellio
from tracecore_perf.matrix.models import Cell, CellOutcome

RESOURCE = "perf_host"
INSTALL = "pip install -e '.[ray]'"
DEFAULT_PORT = 6379
CONNECT_TIMEOUT_S = 5.0
RETRIES = 2  # attempts after the first, when a node or worker is lost mid-cell
NO_HOST_GRACE_S = 120.0  # cells waiting while the cluster has no perf_host node at all: then failed
POLL_S = 2.0


def import_ray():
    try:
        import ray
    except ImportError as exc:
        raise UsageError(f"--ray needs Ray, an optional extra: {INSTALL} ({exc})") from None
    return ray


def parse_address(address: str) -> tuple[str, int]:
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS", "")
        if not address:
            raise UsageError("--ray auto reads RAY_ADDRESS, which is not set; give the head's address, HOST:PORT")
    if "://" in address:
        raise UsageError(f"--ray takes the head's GCS address HOST[:PORT] (ray start --head prints it), not {address}")
    host, _, port = address.rpartition(":") if ":" in address else (address, "", str(DEFAULT_PORT))
    try:
        number = int(port)
    except ValueError:
        raise UsageError(f"--ray: not a port: {port!r} in {address}") from None
    if not host or not 0 < number < 65536:
        raise UsageError(f"--ray: not HOST:PORT: {address}")
    return host, number


# The client's side of an HTTP/2 connection's start: the preface, then an empty SETTINGS frame
# (RFC 9113 section 3.4). Ray's GCS is a gRPC server, which speaks HTTP/2: its first frame is its
# own SETTINGS (it sends it as soon as it accepts, measured with Ray 2.x). A port that answers
# anything else (an HTTP/1 server, an SSH daemon) or nothing is not a Ray cluster's head.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
_SETTINGS = 0x4


def probe(host: str, port: int, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Is a Ray GCS listening at ``host:port``? A plain TCP connection and the first frame of
    an HTTP/2 answer, all within ``timeout``: else one ``ClusterUnreachable`` saying what the
    port did. ``ray.init`` at a port that is no GCS waits for minutes, retrying; this is why
    it is never asked first. With Ray's TLS on (``RAY_USE_TLS``) only the connection is checked."""
    where = f"{host}:{port}"
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
                return
            sock.sendall(_H2_PREFACE)
            head = b""
            while len(head) < 9:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                chunk = sock.recv(9 - len(head))
                if not chunk:
                    what = f"it answered {head!r} and hung up" if head else "it hung up without a word"
                    raise ClusterUnreachable(f"no Ray cluster answers at {where} ({what}: not a Ray GCS)")
                head += chunk
    except TimeoutError:  # socket.timeout: the connection, or the silence after it
        raise ClusterUnreachable(
            f"no Ray cluster answers at {where} (nothing within {timeout:g} s: a silent port, or a filtered one)"
        ) from None
    except OSError as exc:
        raise ClusterUnreachable(f"no Ray cluster answers at {where} ({exc.strerror or exc})") from None
    if head[3] != _SETTINGS or head[5:9] != bytes(4):
        shown = head.split(b"\r\n", 1)[0] if head.startswith(b"HTTP/") else head
        raise ClusterUnreachable(f"no Ray cluster answers at {where} (it speaks another protocol: {shown!r}...; not a Ray GCS)")


def connect(address: str) -> str:
    """Connect this process to the cluster as its driver. A dead, silent or foreign address is
    one ``ClusterUnreachable`` within ~CONNECT_TIMEOUT_S (:func:`probe`; ``ray.init`` alone can
    wait much longer); a cluster without a perf_host node is one too."""
    ray = import_ray()
    host, port = parse_address(address)
    probe(host, port)
    os.environ.setdefault("RAY_gcs_rpc_server_connect_timeout_s", str(int(CONNECT_TIMEOUT_S)))
    try:
        ray.init(
            address=f"{host}:{port}",
            log_to_driver=False,
            logging_level=logging.ERROR,
            namespace="tracecore-perf",
        )
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ...: one line either way
        raise ClusterUnreachable(f"cannot join the Ray cluster at {host}:{port}: {type(exc).__name__}: {exc}") from None
    if not ray.cluster_resources().get(RESOURCE):
        ray.shutdown()
        raise ClusterUnreachable(
            f"the Ray cluster at {host}:{port} has no node with a {RESOURCE} resource; start each quiet host with "
            f"ray start ... --resources '{{\"{RESOURCE}\": 1}}'"
        )
    return f"{host}:{port}"


# --- on the node ---------------------------------------------------------------------------


def run_cell_on_node(cell_data: dict, cwd: str) -> dict:
    """The Ray task's body, on the node that got the perf_host: run the cell's harness as a
    subprocess into a fresh temporary folder and return its output folder as bytes."""
    import json
    import shutil
    import subprocess
    import sys
    import tempfile

    import ray

    from tracecore_perf.run.hostinfo import host_context, machine_id
    from tracecore_perf.run.rundir import utc_now

    cell = msgspec.convert(cell_data, Cell)
    context = ray.get_runtime_context()
    work = Path(tempfile.mkdtemp(prefix=f"tracecore-perf-cell-{cell.name}-"))
    try:
        out = work / "out"
        scenario = work / "scenario.json"
        scenario.write_bytes(msgspec.json.encode(cell.rows))
        argv = [sys.executable, "-m", "tracecore_perf", *cellio.run_argv(cell, out, scenario)]
        started = utc_now().isoformat()
        done = subprocess.run(
            argv,
            cwd=cwd if os.path.isdir(cwd) else str(work),  # relative agent paths resolve as on the driver
            stdin=subprocess.DEVNULL,
            capture_output=True,
            preexec_fn=_die_with_parent,  # a lost task takes its run with it
            check=False,
        )
        finished = utc_now().isoformat()
        archive = work / "out.tar.gz"
        if out.is_dir():
            cellio.pack(out, archive)
        try:
            payload = json.loads(done.stdout)
        except ValueError:
            payload = None
        fingerprint, _ = machine_id(host_context())
        stderr = done.stderr.decode(errors="replace").strip().splitlines()
        return {
            "node": context.get_node_id(),
            "hostname": socket.gethostname(),
            "machine_id": fingerprint,
            "started_at": started,
            "finished_at": finished,
            "attempt": _attempt(context),
            "exit_code": done.returncode,
            "stamp": payload.get("stamp") if isinstance(payload, dict) else None,
            "error": _last_error(stderr, done.returncode),
            "archive": archive.read_bytes() if archive.is_file() else None,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _die_with_parent() -> None:
    import signal

    from tracecore_perf.run.episode.system import PR_SET_PDEATHSIG, prctl

    prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # SIGTERM, which the harness handles as an interrupt


def _attempt(context) -> int | None:
    """1 for the task's first run, 2 after one retry... (Ray keeps the number on its core
    worker; None where a Ray version does not)."""
    try:
        from ray._private.worker import global_worker

        return int(global_worker.core_worker.get_current_task_attempt_number()) + 1
    except Exception:
        return None


def _last_error(stderr: list[str], code: int) -> str | None:
    if code in (0, 1):
        return None
    lines = [line for line in stderr if line.startswith("tracecore-perf:")]
    return (lines[-1] if lines else (stderr[-1] if stderr else f"the harness exited {code}"))[:500]


# --- on the driver -------------------------------------------------------------------------


def run_cells(
    cells: list[Cell],
    matrix_dir: Path,
    on_done: Callable[[CellOutcome], None],
    *,
    cwd: str,
    retries: int = RETRIES,
    say: Callable[[str], None] = lambda line: None,
) -> int | None:
    """Submit every cell, then take each as it finishes and write its files under
    ``matrix_dir/<cell>``. Returns 130 (143 for SIGTERM) when interrupted (the cells in flight
    are cancelled, marked interrupted), else None. Call ``connect`` first."""
    ray = import_ray()
    task = ray.remote(resources={RESOURCE: 1}, num_cpus=0, max_retries=retries, retry_exceptions=False)(run_cell_on_node)
    for cell in cells:
        cellio.set_aside(matrix_dir, cell.name)
    refs = {task.options(name=f"tracecore-perf-cell-{cell.name}").remote(msgspec.to_builtins(cell), cwd): cell for cell in cells}
    pending = list(refs)
    say(f"{len(cells)} cells submitted to the cluster ({int(ray.cluster_resources().get(RESOURCE, 0))} perf_host nodes)")
    no_host_since: float | None = None
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=POLL_S)
            for ref in ready:
                outcome = _collect(ray, ref, refs[ref], matrix_dir)
                say(f"cell {outcome.name}: {outcome.status} on node {(outcome.node or '?')[:8]}")
                on_done(outcome)
            if ready or not pending:
                continue
            if not ray.cluster_resources().get(RESOURCE):  # every perf_host node is gone
                no_host_since = no_host_since or time.monotonic()
                if time.monotonic() - no_host_since > NO_HOST_GRACE_S:
                    for ref in pending:
                        with contextlib.suppress(Exception):
                            ray.cancel(ref, force=True)
                        on_done(_failed(refs[ref], f"no node with a {RESOURCE} resource left in the cluster"))
                    pending = []
            else:
                no_host_since = None
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM as the session turns it into one
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
            outcome = _failed(refs[ref], "interrupted")
            outcome.status = "interrupted"
            on_done(outcome)
        return getattr(exc, "exit_code", 130)
    return None


def _failed(cell: Cell, reason: str) -> CellOutcome:
    return CellOutcome(name=cell.name, status="failed", error=reason, path=cell.name)


def _collect(ray, ref, cell: Cell, matrix_dir: Path) -> CellOutcome:
    try:
        shipped = ray.get(ref)
    except ray.exceptions.RayError as exc:  # the retries are used up: node lost, worker killed, ...
        first = str(exc).strip().splitlines()
        return _failed(cell, f"{type(exc).__name__}: {first[0] if first else ''}"[:500])
    outcome = CellOutcome(
        name=cell.name,
        node=shipped["node"],
        hostname=shipped["hostname"],
        machine_id=shipped["machine_id"],
        started_at=shipped["started_at"],
        finished_at=shipped["finished_at"],
        attempt=shipped["attempt"],
        exit_code=shipped["exit_code"],
        path=cell.name,
    )
    cell_dir = matrix_dir / cell.name
    if shipped["archive"] is not None:
        cellio.unpack(shipped["archive"], cell_dir)
    run = cellio.published(cell_dir)
    if run is None:
        outcome.status = "failed"
        outcome.error = shipped["error"] or f"the run published nothing (exit {shipped['exit_code']})"
        return outcome
    cellio.fill(outcome, run, shipped["exit_code"])
    outcome.machine_id = run.manifest().machine_id()  # as the run published it
    if outcome.status == "failed":
        outcome.error = shipped["error"]
    return outcome


def shutdown() -> None:
    import ray

    with contextlib.suppress(Exception):
        ray.shutdown()
