"""``matrix --ray``: a real two-node Ray cluster on this machine (``ray.cluster_utils.Cluster``,
each node with one perf_host, shared by the module), driven by the real command line. Every
cell is published under the matrix folder as a local run would be; both nodes are used; a node
never runs two cells at once; a node killed mid-cell has its cell retried on the other node (or
reported failed, then completed by ``--resume``); a dead address is one line within seconds."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import psutil
import pytest

from conftest import AGENTS, communicate, harness, harness_env, leftover_processes, wait_for

pytestmark = pytest.mark.slow  # a Ray cluster and real episodes

ray = pytest.importorskip("ray", reason="the Ray extra is not installed: pip install -e '.[ray]'")

TOY = '{agent = "agents/toy_agent.py", task_ref = "filesystem_hidden_config@1", seed = 42}'
NODE = {"num_cpus": 1, "resources": {"perf_host": 1}}


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    scratch = Path(tempfile.gettempdir())
    before = set(scratch.iterdir())
    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    try:
        cluster.add_node(**NODE)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        cluster.shutdown()
        # Ray's session files go under $TMPDIR, which conftest made the test session's own; its
        # processes may still write there a moment after the shutdown: removed until gone
        ray_files = scratch / "ray"
        wait_for(lambda: _removed(ray_files), watch=[scratch], what="Ray's session files to be removed")
        # what a node's harness killed with its node (a lost node; the shutdown) could not clean
        # up, its cell's folder and its episodes' scratch root, once no process works there; and
        # Ray's files again, which a process still dying may have written since (a loaded host)
        for left in sorted(set(scratch.iterdir()) - before):
            if left.name == "ray" or left.name.startswith("tracecore-perf-"):
                wait_for(lambda left=left: not leftover_processes(left) and _removed(left), watch=[scratch],
                         what=f"{left.name} to be cleared after the cluster's shutdown")  # fmt: skip


def _removed(folder: Path) -> bool:
    shutil.rmtree(folder, ignore_errors=True)
    return not folder.exists()


def node_ids(cluster) -> dict[str, object]:
    """Ray node id -> the cluster_utils node, for the nodes alive now."""
    return {node.node_id: node for node in cluster.list_all_nodes() if node.all_processes}


def spans(cells: list[dict]) -> dict[str, list[tuple[datetime, datetime]]]:
    by_node = defaultdict(list)
    for cell in cells:
        if cell["started_at"]:
            when = datetime.fromisoformat
            by_node[cell["node"]].append((when(cell["started_at"]), when(cell["finished_at"])))
    return by_node


def assert_one_cell_at_a_time(cells: list[dict]) -> None:
    for node, runs in spans(cells).items():
        runs.sort()
        for (_, end), (start, _) in zip(runs, runs[1:], strict=False):
            assert end <= start, f"two cells at once on node {node}: {runs}"


def test_every_cell_published_both_nodes_used_one_cell_at_a_time(tmp_path: Path, cluster):
    cells = "".join(f'[[cells]]\nname = "c{i}"\n' for i in range(4))
    (tmp_path / "cells.toml").write_text(f"episodes = 4\nworkers = 2\nrows = [{TOY}]\n{cells}")
    done = harness("matrix", "cells.toml", "--ray", cluster.address, "--output-dir", "out", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    matrix_dir = tmp_path / "out" / f"matrix-{payload['stamp']}"
    result = json.loads((matrix_dir / f"perf-matrix-{payload['stamp']}.json").read_text())
    assert result["backend"] == "ray" and result["ok"] is True
    alive = node_ids(cluster)
    assert {c["node"] for c in payload["cells"]} == set(alive)  # both nodes ran cells
    assert_one_cell_at_a_time(payload["cells"])
    for cell in result["cells"]:
        assert cell["status"] == "ok" and cell["machine_id"] and cell["hostname"] and cell["attempt"] == 1
        folder = matrix_dir / cell["name"]
        kinds = sorted(p.name.split("-")[1] for p in folder.glob(f"perf-*-{cell['stamp']}.json"))
        assert kinds == ["manifest", "metrics", "samples", "series", "summary"]  # as a local run leaves them
        assert (folder / f"run-{cell['stamp']}" / "series.jsonl").is_file()
    checked = harness("check", str(matrix_dir / "c0"), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert {(c["baseline"], c["current"]) for c in result["comparisons"]} == {
        (f"c{i}", f"c{j}") for i in range(4) for j in range(i + 1, 4)
    }
    assert all(c["refused"] is None and c["different_machine_class"] is False for c in result["comparisons"])


def raylet_of(pid: int, nodes: dict[str, object]) -> str | None:
    """The node whose raylet has ``pid`` (an episode process) among its descendants."""
    raylets = {node.all_processes["raylet"][0].process.pid: node_id for node_id, node in nodes.items()}
    try:
        for parent in psutil.Process(pid).parents():
            if parent.pid in raylets:
                return raylets[parent.pid]
    except psutil.Error:
        return None
    return None


def both_at_the_gate(folder: Path) -> list[Path] | None:
    started = sorted(folder.glob("gate-started-*"))
    return started if len(started) == 2 else None


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("retries", [2, 0])
def test_a_node_lost_mid_cell(tmp_path: Path, cluster, retries: int):
    """Two gated cells, one per node; the node that is not the head is removed while its cell's
    episode waits at the gate. With retries the cell runs again on the other node; without, it
    is reported failed and ``--resume`` completes it."""
    gate = tmp_path / "gate_agent.py"
    shutil.copyfile(AGENTS / "gate_agent.py", gate)
    row = f'{{agent = "{gate}", task_ref = "filesystem_hidden_config@1", seed = 1}}'
    (tmp_path / "cells.toml").write_text(
        f'episodes = 1\nworkers = 1\nrows = [{row}]\n[[cells]]\nname = "g1"\n[[cells]]\nname = "g2"\n'
    )
    argv = [sys.executable, "-m", "tracecore_perf", "matrix", "cells.toml", "--ray", cluster.address,
            "--output-dir", "out", "--json", "--retries", str(retries)]  # fmt: skip
    driver = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=harness_env(tmp_path))  # fmt: skip
    scratch = Path(tempfile.gettempdir())  # where the nodes' harnesses work: the session's own
    before = set(scratch.iterdir())
    try:
        started = wait_for(lambda: both_at_the_gate(tmp_path), proc=driver, watch=[tmp_path],
                           what="both cells' episodes at the gate")  # fmt: skip
        nodes = node_ids(cluster)
        head = cluster.head_node.node_id
        where = {raylet_of(int(p.read_text()), nodes): p for p in started}
        assert set(where) == set(nodes), where  # one gated cell per node
        victim = next(node_id for node_id in nodes if node_id != head)
        cluster.remove_node(nodes[victim])
        # the lost node's harness dies with its Ray worker, and its episode with it
        wait_for(
            lambda: gone(int(where[victim].read_text())), proc=driver, watch=[tmp_path], what="the lost node's episode to die"
        )
        (tmp_path / "gate-open").write_text("")
        out, err = communicate(driver, watch=[tmp_path])
    finally:
        if driver.poll() is None:
            driver.kill()
        (tmp_path / "gate-open").touch()
        cluster.add_node(**NODE)  # the module's two nodes again, for the next test
        cluster.wait_for_nodes()
        # what the lost node's harness (killed with its node) could not clean up: its cell's
        # folder and its episodes' scratch root; its processes die with the node's Ray worker, not
        # at once, and may still be writing there: removed once none works there and it is gone
        for left in set(scratch.iterdir()) - before:
            if left.name.startswith("tracecore-perf-"):
                wait_for(lambda left=left: not leftover_processes(left) and _removed(left), watch=[scratch],
                         what=f"the lost node's {left.name} to be cleared")  # fmt: skip
    payload = json.loads(out)
    cells = {c["name"]: c for c in payload["cells"]}
    assert_one_cell_at_a_time(payload["cells"])
    matrix_dir = tmp_path / "out" / f"matrix-{payload['stamp']}"
    result = {c["name"]: c for c in json.loads((matrix_dir / f"perf-matrix-{payload['stamp']}.json").read_text())["cells"]}
    if retries:
        assert driver.returncode == 0, err
        assert all(c["status"] == "ok" for c in cells.values())
        retried = [c for c in result.values() if c["attempt"] == 2]
        assert len(retried) == 1 and retried[0]["node"] == head  # run again on the node still there
    else:
        assert driver.returncode == 1, err
        lost = [c for c in result.values() if c["status"] == "failed"]
        assert len(lost) == 1 and lost[0]["error"] and lost[0]["node"] is None, result
        assert "--resume" in err
        kept = next(c for c in result.values() if c["status"] == "ok")
        again = harness("matrix", "--resume", str(matrix_dir), "--ray", cluster.address, "--json", cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        resumed = {c["name"]: c for c in json.loads(again.stdout)["cells"]}
        assert all(c["status"] == "ok" for c in resumed.values())
        assert resumed[kept["name"]]["stamp"] == kept["stamp"]  # only the lost cell ran again
        assert resumed[lost[0]["name"]]["summary"]["episodes"] == 1
    assert leftover_processes(tmp_path) == []


def test_an_address_where_no_cluster_answers_is_one_line_within_seconds(tmp_path: Path):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "cells.toml").write_text(f'episodes = 1\nrows = [{TOY}]\n[[cells]]\nname = "a"\n')
    # The harness asks the address with a plain socket before Ray ever tries (and retries for
    # minutes); the one line below is that check's. The timeout only guards against a hang.
    done = harness("matrix", "cells.toml", "--ray", f"127.0.0.1:{port}", "--output-dir", "out", cwd=tmp_path)
    assert done.returncode == 3 and done.stderr.count("\n") == 1, done.stderr
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["http", "silent"])
def test_an_address_that_speaks_http_or_nothing_is_one_line_within_seconds(tmp_path: Path, kind: str):
    """A port that is no Ray GCS: an HTTP server, or a listener that accepts and never says a
    word. ``ray.init`` at either waited for minutes; the harness's probe (a TCP connection and
    the first frame of an HTTP/2 answer, within ray_backend.CONNECT_TIMEOUT_S) answers first."""
    import http.server
    import socket
    import threading

    server = listener = None
    if kind == "http":
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.server_address[1]
    else:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
    try:
        (tmp_path / "cells.toml").write_text(f'episodes = 1\nrows = [{TOY}]\n[[cells]]\nname = "a"\n')
        done = harness("matrix", "cells.toml", "--ray", f"127.0.0.1:{port}", "--output-dir", "out", cwd=tmp_path)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        if listener is not None:
            listener.close()
    assert done.returncode == 3 and done.stderr.count("\n") == 1, done.stderr
    assert f"no Ray cluster answers at 127.0.0.1:{port} (" in done.stderr
    assert ("another protocol" if kind == "http" else "nothing within") in done.stderr
    assert not (tmp_path / "out").exists()
