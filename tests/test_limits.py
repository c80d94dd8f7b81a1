"""Faults and bad input lose nothing: a closed stdout is exit 141 with no traceback
(through rich and argparse too), and a run whose reader went away is still published;
``--timeout`` below its minimum is one line, and a kill that reaches a worker together with
its run is obeyed; a ``--ray`` address that speaks HTTP, or nothing, is one line; scenario
and matrix files are bounded (regular files, bytes, rows) before they are read whole.

Tests that start a process (the command line, a child for a worker's watch) are marked slow,
as the suite requires; the rest run in-process against real pipes, sockets and files."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tracecore_perf import defaults
from tracecore_perf.errors import ClusterUnreachable, UsageError, read_input
from tracecore_perf.matrix.ray_backend import probe
from tracecore_perf.run.scenario import load_scenario

from conftest import harness, harness_env, published, run_watched, scenario_file

TOY = {"agent": "agents/toy_agent.py", "task_ref": "filesystem_hidden_config@1", "seed": 42}


def closed_stdout(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m tracecore_perf ARGS | true`` with the reader already gone: stdout is a pipe
    whose read end is closed, so the first write that reaches it fails with EPIPE."""
    read, write = os.pipe()
    os.close(read)
    try:
        return run_watched(
            [sys.executable, "-m", "tracecore_perf", *args],
            cwd=cwd,
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            env=harness_env(cwd),
            watch=[cwd],
        )
    finally:
        os.close(write)


# --- a closed stdout -------------------------------------------------------------------


@pytest.mark.slow  # starts a process
@pytest.mark.parametrize("args", [["--version"], ["--help"], ["check", "--help"], ["history", "--help"]])
def test_help_and_version_into_a_closed_pipe_exit_141_without_a_traceback(tmp_path: Path, args: list[str]):
    done = closed_stdout(*args, cwd=tmp_path)
    assert done.returncode == 141, done.stderr
    assert done.stderr == ""


def test_rich_console_into_a_closed_pipe_raises_broken_pipe_not_system_exit():
    from rich.table import Table

    from tracecore_perf.run.console import Console

    read, write = os.pipe()
    os.close(read)
    sink = open(write, "w")  # noqa: SIM115 - closed below, where its last flush fails as it must
    try:
        console = Console(file=sink)
        table = Table()
        table.add_column("x")
        table.add_row("y")
        with pytest.raises(BrokenPipeError):
            console.print(table)
    finally:
        with contextlib.suppress(BrokenPipeError):
            sink.close()


@pytest.mark.slow
@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_a_run_whose_reader_went_away_is_published_and_exits_141(tmp_path: Path, json_flag: list[str]):
    done = closed_stdout("--episodes", "2", "--workers", "1", "--output-dir", "out", *json_flag, cwd=tmp_path)
    assert done.returncode == 141, done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    assert published(tmp_path / "out", "summary")["episodes"] == 2


# --- SIGHUP as SIGTERM -----------------------------------------------------------------


def test_sighup_raises_terminated_as_sigterm_does():
    from tracecore_perf.errors import TERMINATING, Terminated, restore_handlers, stop_on_sigterm, terminating_code

    assert signal.SIGHUP in TERMINATING and terminating_code(signal.SIGHUP) == terminating_code(signal.SIGTERM) == 143
    assert terminating_code(signal.SIGINT) == 130
    previous = stop_on_sigterm()
    try:
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGHUP)  # its handler runs as the call returns
    finally:
        restore_handlers(previous)
    assert signal.getsignal(signal.SIGHUP) is previous[signal.SIGHUP]


# --- --timeout -------------------------------------------------------------------------


@pytest.mark.slow  # starts a process
@pytest.mark.parametrize("value", ["0.001", "0.009", "0"])
def test_a_timeout_below_the_minimum_is_one_line_exit_2(tmp_path: Path, value: str):
    done = harness("--timeout", value, "--output-dir", "out", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "--timeout" in done.stderr
    assert not (tmp_path / "out").exists()


def test_the_minimum_timeout_is_in_the_flag_help_and_refused_in_process(tmp_path: Path, capsys):
    from tracecore_perf.cli import main
    from tracecore_perf.cli.run import run_parser

    assert f"at least {defaults.MIN_TIMEOUT_S:g}" in " ".join(run_parser().format_help().split())
    assert main(["--timeout", "0.001", "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == "tracecore-perf: error: argument --timeout: must be at least 0.01 seconds, got 0.001\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # starts a process
def test_a_kill_read_together_with_its_run_is_obeyed(tmp_path: Path):
    """A timeout shorter than the worker takes to fork: the harness's ``kill`` arrives with
    the ``run`` and is read with it, into the worker's inbox, where ``select`` cannot see it.
    The worker's watch must still kill the episode (it used to let it run to its end, and the
    row said success)."""
    from tracecore_perf.run.episode.worker import Worker

    ours, theirs = socket.socketpair()
    # a child that would outlive the test by far, unless killed; its own process group, as an
    # episode's (Worker.kill_tree signals the group)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    try:
        worker = Worker("forkserver", theirs.fileno())
        worker.inbox = json.dumps({"cmd": "kill", "grace": 30}).encode() + b"\n"
        worker.current_pgid = child.pid
        status, _, killed = worker._watch(child.pid, {}, str(tmp_path))
        assert killed
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
    finally:
        if child.poll() is None:  # reaped by the worker's watch, unless the test failed early
            child.kill()
            child.wait()
        ours.close()
        theirs.close()


# --- --ray at a port that is no Ray GCS ------------------------------------------------


@pytest.fixture
def http_port():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def silent_port():
    """A port that accepts connections (the kernel completes them into the backlog) and never
    says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@pytest.fixture
def hanging_up_port():
    """A port that accepts and closes at once."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()


def test_a_port_speaking_http_is_no_ray_cluster(http_port: int):
    with pytest.raises(ClusterUnreachable, match=rf"no Ray cluster answers at 127\.0\.0\.1:{http_port} \(it speaks another"):
        probe("127.0.0.1", http_port)


def test_a_silent_port_is_no_ray_cluster(silent_port: int):
    with pytest.raises(ClusterUnreachable, match=rf"no Ray cluster answers at 127\.0\.0\.1:{silent_port} \(nothing within"):
        probe("127.0.0.1", silent_port, timeout=0.5)


def test_a_port_that_hangs_up_is_no_ray_cluster(hanging_up_port: int):
    with pytest.raises(ClusterUnreachable, match=rf"no Ray cluster answers at 127\.0\.0\.1:{hanging_up_port} \("):
        probe("127.0.0.1", hanging_up_port)


def test_an_http2_settings_frame_is_taken_for_a_gcs():
    """What Ray's GCS (gRPC) sends first, recorded from Ray 2.x: a SETTINGS frame on stream 0."""
    first = bytes.fromhex("000018040000000000000400400000000500400000000600004000fe0300000001")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def answer() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.sendall(first)
                conn.recv(1024)

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        probe("127.0.0.1", listener.getsockname()[1])
        thread.join(timeout=30)


# --- scenario and matrix files bounded -------------------------------------------------


def test_a_device_is_refused_before_it_is_read():
    with pytest.raises(UsageError, match=r"scenario file is not a regular file \(a device\): /dev/zero"):
        load_scenario(Path("/dev/zero"))


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path):
    fifo = tmp_path / "rows.json"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match=r"not a regular file \(a FIFO\)"):
        load_scenario(fifo)


def test_a_file_over_the_byte_limit_is_refused_before_it_is_read(tmp_path: Path):
    big = tmp_path / "rows.json"
    with big.open("wb") as fh:  # sparse: its size says it all, nothing of it is read
        fh.truncate(defaults.MAX_INPUT_BYTES + 1)
    with pytest.raises(UsageError, match=r"scenario file is larger than 4 MiB, the most read"):
        load_scenario(big)
    small = tmp_path / "small.json"
    small.write_bytes(b"x" * 11)
    with pytest.raises(UsageError, match=r"larger than 10 bytes"):
        read_input(small, "scenario file", limit=10)


def test_more_rows_than_the_maximum_are_refused(tmp_path: Path):
    most = [dict(TOY, seed=i) for i in range(defaults.MAX_SCENARIO_ROWS)]
    assert len(load_scenario(scenario_file(tmp_path / "most.json", most))) == defaults.MAX_SCENARIO_ROWS
    with pytest.raises(UsageError, match=rf"has {defaults.MAX_SCENARIO_ROWS + 1} rows, more than the"):
        load_scenario(scenario_file(tmp_path / "more.json", [*most, TOY]))


def test_a_matrix_cell_with_too_many_inline_rows_is_refused(tmp_path: Path):
    from tracecore_perf.matrix.plan import load

    row = '{agent = "agents/toy_agent.py", task_ref = "filesystem_hidden_config@1"}'
    rows = ", ".join([row] * (defaults.MAX_SCENARIO_ROWS + 1))
    cells = tmp_path / "cells.toml"
    cells.write_text(f'rows = [{rows}]\n[[cells]]\nname = "a"\n')
    with pytest.raises(UsageError, match=r"cell 'a' has 10001 rows"):
        load(cells)


@pytest.mark.slow  # starts a process
@pytest.mark.parametrize("source", ["/dev/zero", "fifo", "big", "rows"])
def test_bad_scenario_files_are_one_line_exit_2_nothing_written(tmp_path: Path, source: str):
    if source == "fifo":
        os.mkfifo(tmp_path / "fifo")
        path = str(tmp_path / "fifo")
    elif source == "big":
        path = str(tmp_path / "big.json")
        with open(path, "wb") as fh:
            fh.truncate(defaults.MAX_INPUT_BYTES + 1)
    elif source == "rows":
        path = str(scenario_file(tmp_path / "rows.json", [TOY] * (defaults.MAX_SCENARIO_ROWS + 1)))
    else:
        path = source
    done = harness("--scenario", path, "--output-dir", "out", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("tracecore-perf: error: scenario file")
    assert not (tmp_path / "out").exists()
