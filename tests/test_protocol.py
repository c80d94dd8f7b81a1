"""The zygote/worker protocol: the harness's Structs (``protocol.py``) and the plain dicts
``episode_worker.py`` builds and reads must agree, field for field. In-process, no episode."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import time

import msgspec
import pytest

from tracecore_perf.run import episode_worker, protocol, spawn


def test_both_sides_speak_the_same_protocol_version():
    assert episode_worker.PROTOCOL_VERSION == protocol.PROTOCOL_VERSION
    # the zygote finds the folder of its processes' instruction counts where spawn puts it
    assert episode_worker.CALLGRIND_DIR_ENV == spawn.CALLGRIND_DIR_ENV


HEADER = (
    "version: 1\ncreator: callgrind-3.19.0\npid: {pid}\npart: {part}\ndesc: Trigger: {trigger}\nevents: Ir\nsummary: {count}\n"
)


def _count_file(folder, name: str, pid: int, count: int, part: int = 1, trigger: str = "Program termination") -> None:
    (folder / name).write_text(HEADER.format(pid=pid, count=count, part=part, trigger=trigger))


def test_a_count_is_read_from_the_summary_line_and_the_file_removed(tmp_path, monkeypatch):
    # the header callgrind writes (totals: also counts frames live at the zeroing, so it is not used)
    _count_file(tmp_path, "callgrind.out.77", 77, 48825954)
    (tmp_path / "callgrind.out.78").write_text("version: 1\npid: 78\ndesc: Trigger: Program termination\n")  # cut short
    monkeypatch.setattr(episode_worker, "_callgrind_dir", str(tmp_path))
    now = time.time() + 1
    assert episode_worker.episode_instructions(77, now) == (48825954, None)
    assert episode_worker.episode_instructions(78, now)[0] is None
    assert episode_worker.episode_instructions(79, now) == (None, "callgrind wrote no count for it")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(episode_worker, "_callgrind_dir", None)  # a native run counts nothing
    assert episode_worker.episode_instructions(77, now) == (None, None)


@pytest.mark.parametrize(
    ("plant", "says"),
    [
        ("link", "replaced (a link"),
        ("fifo", "not a regular file"),
        ("hardlink", "linked elsewhere"),
        ("late", "changed after the episode process ended"),
        ("dumped", "dump its counts before its end"),
        ("zero", "holds no count"),
        ("wrapped", "holds no count"),
    ],
)
def test_a_count_file_that_is_not_callgrinds_last_word_is_no_figure(tmp_path, monkeypatch, plant: str, says: str):
    """What an episode (or a neighbour) can leave at its count file's name under $TMPDIR."""
    monkeypatch.setattr(episode_worker, "_callgrind_dir", str(tmp_path))
    name, ended_at = "callgrind.out.50", time.time() + 60
    elsewhere = tmp_path.parent / f"{tmp_path.name}-forged"
    _count_file(elsewhere.parent, elsewhere.name, 50, 1000)
    if plant == "link":
        (tmp_path / name).symlink_to(elsewhere)
    elif plant == "fifo":
        os.mkfifo(tmp_path / name)
    elif plant == "hardlink":
        os.link(elsewhere, tmp_path / name)
    elif plant == "late":
        _count_file(tmp_path, name, 50, 1000)
        ended_at = time.time() - 60
    elif plant == "dumped":  # CALLGRIND_DUMP_STATS: part 1 holds what came before, the last part the rest
        _count_file(tmp_path, name + ".1", 50, 900, trigger="Client Request")
        _count_file(tmp_path, name, 50, 100, part=2)
    else:
        _count_file(tmp_path, name, 50, 0 if plant == "zero" else 2**64 - 5)
    count, error = episode_worker.episode_instructions(50, ended_at)
    assert count is None and says in error, error
    assert list(tmp_path.iterdir()) == []  # the planted files are gone with it


def test_a_count_far_below_what_the_cpu_time_implies_is_no_figure(monkeypatch):
    monkeypatch.setattr(episode_worker, "_counted_rate", 170e6)
    assert episode_worker.implausible_count(36_000_000, 0.35) is None  # a toy episode: 103 M/s
    assert "zeroed or switched off" in episode_worker.implausible_count(6_000_000, 0.35)  # ZERO_STATS: -83%
    assert episode_worker.implausible_count(100_000, 0.01) is None  # too little CPU to judge
    monkeypatch.setattr(episode_worker, "_counted_rate", None)
    assert episode_worker.implausible_count(6_000_000, 0.35) is None


class _Recorder(episode_worker._Role):
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, message: dict) -> None:
        self.sent.append(json.dumps(message).encode())


@pytest.mark.parametrize("decoder", [protocol.zygote_events, protocol.worker_events])
def test_the_greeting_and_the_goodbye_decode_as_ready_and_bye(decoder):
    role = _Recorder()
    role.greet_once()
    role.greet_once()  # once only
    role.bye()
    ready, bye = (decoder.decode(line) for line in role.sent)
    assert isinstance(ready, protocol.Ready) and ready.protocol == protocol.PROTOCOL_VERSION
    assert isinstance(bye, protocol.Bye) and bye.cpu_user_s >= 0


def _done(report: bytes, runs_dir: str | None) -> protocol.Done:
    message = {
        "event": "done",
        "returncode": 0,
        "killed": False,
        "cpu_user_s": 0.01,
        "cpu_sys_s": 0.0,
        "max_rss_bytes": 1,
        "output_bytes": 0,
        "leftover_processes": 0,
        **episode_worker._check_report(bytearray(report), {"runs_dir": runs_dir}),
    }
    event = protocol.worker_events.decode(json.dumps(message).encode())
    assert isinstance(event, protocol.Done)
    return event


def test_a_finished_report_becomes_a_done_with_the_artifact_placed_in_the_run(tmp_path):
    artifact = {"run_id": "r1", "success": True, "action_trace": [{"llm_trace": [{"request": {"prompt": "ab"}}]}]}
    report = {"completed": True, "episode_s": 0.5, "run_id": "r1", "artifact": artifact}
    runs = tmp_path / ".agent_bench" / "runs"  # as in a run directory (made by the worker if missing)
    done = _done(json.dumps(report).encode(), str(runs))
    assert done.artifact is not None and done.artifact.success and done.artifact.llm_trace_entries == 1
    assert done.artifact.artifact_bytes == len(json.dumps(artifact, sort_keys=True).encode())
    assert "artifact" not in done.result  # the harness gets the facts, not the artifact
    placed = (runs / "r1.json").read_bytes()
    assert done.artifact.sha256 == hashlib.sha256(placed).hexdigest()
    assert placed == json.dumps(artifact, ensure_ascii=False, indent=2).encode()  # persist_run's format
    assert done.artifact.file_bytes == len(placed)


def test_the_spec_check_and_the_agents_name_are_the_workers_never_the_episodes(tmp_path):
    # An episode that claims its artifact passed the spec check: the worker checks it itself.
    artifact = {"run_id": "r2", "success": True, "agent": "/abs/agents/toy_agent.py", "agent_ref": "/abs/agents/toy_agent.py"}
    report = {"completed": True, "episode_s": 0.5, "run_id": "r2", "artifact": artifact, "spec_errors": []}
    runs = tmp_path / ".agent_bench" / "runs"
    job = {
        "runs_dir": str(runs),
        "strict_spec": True,
        "agent": "/abs/agents/toy_agent.py",
        "agent_label": "agents/toy_agent.py",
    }
    message = episode_worker._check_report(bytearray(json.dumps(report).encode()), job)
    assert message["result"]["spec_errors"], "TraceCore's spec check finds a bare artifact wanting"
    placed = json.loads((runs / "r2.json").read_text())
    assert placed["agent"] == placed["agent_ref"] == "agents/toy_agent.py"  # recorded under the name given
    # without --strict-spec there is no spec verdict at all, whatever the episode says
    report["run_id"] = artifact["run_id"] = "r3"
    message = episode_worker._check_report(bytearray(json.dumps(report).encode()), dict(job, strict_spec=False))
    assert "spec_errors" not in message["result"] and message["artifact"]["success"]


# What persist_run's format must survive: empty and nested containers, escapes, non-ASCII
# text, the floats json writes its own way, non-string keys, NaN (msgspec cannot read it).
TRICKY_ARTIFACTS = [
    {},
    {"run_id": "r", "a": [], "b": {}, "c": [[], {}, [[{}]]], "d": {"e": {"f": []}}},
    {"s": 'é \u2028 \n\t "q" \\ / \x00 \x7f 😀 \u00a0', "": ""},
    {"f": [1.0, 1e-7, 1e22, -0.0, 0.1 + 0.2, 5e-324, 12345678901234567890123], "b": [True, False, None]},
    {1: "int key", 2.5: "float key", "nested": [1, [2, [3, [4, {"x": None}]]]]},
    {"nan": float("nan"), "inf": [float("inf"), float("-inf")]},
]


@pytest.mark.parametrize("artifact", TRICKY_ARTIFACTS)
@pytest.mark.parametrize("with_msgspec", [True, False], ids=["msgspec", "stdlib-only interpreter"])
def test_artifacts_are_placed_byte_for_byte_as_persist_run_writes_them(artifact, with_msgspec, monkeypatch):
    monkeypatch.setattr(episode_worker, "_reindent", None)  # a zygote without msgspec
    if with_msgspec:
        episode_worker._load_reindent()  # what a zygote of the harness's own interpreter does
        assert episode_worker._reindent is msgspec.json.format
    assert episode_worker.persist_bytes(artifact) == json.dumps(artifact, ensure_ascii=False, indent=2).encode("utf-8")


@pytest.mark.parametrize("artifact", TRICKY_ARTIFACTS)
def test_a_capped_placement_is_the_same_bytes_on_either_path_and_nothing_past_the_cap(artifact):
    expected = json.dumps(artifact, ensure_ascii=False, indent=2).encode("utf-8")
    compact = json.dumps(artifact, ensure_ascii=False)
    assert episode_worker.persist_bytes_within(artifact, compact, 1 << 30) == expected  # the bound's fast path
    # a cap the bound cannot prove: the standard library's encoder, piece by piece
    assert episode_worker.persist_bytes_within(artifact, compact, len(expected)) == expected
    assert episode_worker.persist_bytes_within(artifact, compact, len(expected) - 1) is None


# What the size bound must see through: brackets and escaped quotes inside strings, empty
# containers, depth without width, width without depth, non-ASCII text.
BOUNDED_ARTIFACTS = [
    *TRICKY_ARTIFACTS[:5],
    {"s": ['say "[[[" \\ {', '\\"]]', "", '"', "\\\\[", "é[ü{"] * 50, "n": [[[[[]]]], {"a": {"b": {}}}] * 20},
    {"x": json.loads("[" * 300 + ",".join(["0"] * 500) + "]" * 300)},
    {"x": list(range(20_000)), "y": [{"k": i, "v": [i, {"w": str(i)}]} for i in range(2_000)]},
]


@pytest.mark.parametrize("artifact", BOUNDED_ARTIFACTS)
def test_the_indented_size_bound_is_never_below_the_size(artifact):
    size = len(json.dumps(artifact, ensure_ascii=False, indent=2).encode("utf-8"))
    compact = json.dumps(artifact, ensure_ascii=False)
    for cap in (1 << 40, 4 * size + 1000, size):  # the bracket count's bound, and the depth's
        bound = episode_worker._indented_size_bound(compact, cap)
        assert bound > cap or bound >= size, (cap, bound, size)
    assert episode_worker._indented_size_bound(compact, 4 * size + 1000) <= 4 * size + 1000  # the depth clears it


def test_strings_are_cut_out_piece_by_piece_as_in_one_go():
    import random

    rng = random.Random(3)
    for _ in range(2000):
        kept = bytes(rng.choice(b'"[]') for _ in range(rng.randint(0, 300)))
        kept += b'"' * (kept.count(b'"') % 2)  # every string closed, as json writes them
        whole = b"".join(kept.split(b'"')[0::2])
        assert episode_worker._outside_strings(kept, piece=rng.randint(1, 20)) == whole, kept


def test_an_artifact_indentation_multiplies_is_refused_at_the_cap():
    from tracecore_perf.run.integrity import MAX_ARTIFACT_BYTES

    assert episode_worker.ARTIFACT_CAP_BYTES == MAX_ARTIFACT_BYTES  # what the worker places, the check reads
    bomb = {"x": json.loads("[" * 400 + ",".join(["0"] * 100_000) + "]" * 400)}  # ~80 MB indented
    compact = json.dumps(bomb, ensure_ascii=False)
    assert len(compact) < 1024 * 1024
    assert episode_worker.persist_bytes_within(bomb, compact, episode_worker.ARTIFACT_CAP_BYTES) is None


@pytest.mark.parametrize(
    "artifact", [*TRICKY_ARTIFACTS[:4], TRICKY_ARTIFACTS[5], {"lone": "\ud800 x \udfff", "ключ": "значение 😀"}]
)
def test_the_artifact_size_is_the_scaffolds_figure_without_a_second_encoding(artifact):
    """The scaffold's size, ``len(json.dumps(artifact, sort_keys=True).encode())``, from the
    compact text the worker writes the artifact from (string keys, as a decoded report has)."""
    compact = json.dumps(artifact, ensure_ascii=False)
    assert episode_worker.scaffold_bytes(compact) == len(json.dumps(artifact, sort_keys=True).encode("utf-8"))


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        (b"", None),
        (b"[1, 2]", "bad result: a JSON list"),
        (b"{not json", "bad result: not one JSON value"),
        (b'{"a":' + b"[" * 30000 + b"]" * 30000 + b"}", "bad result: not one JSON value"),
    ],
)
def test_unusable_reports_are_the_episodes_bad_result(report, expected):
    done = _done(report, None)
    assert done.result is None
    assert (done.result_error or "").startswith(expected) if expected else done.result_error is None


def test_a_claim_without_its_artifact_is_unverified_and_places_nothing(tmp_path):
    report = {"completed": True, "episode_s": 0.1, "run_id": "forged"}
    done = _done(json.dumps(report).encode(), str(tmp_path))
    assert done.artifact is None and "no TraceCore artifact" in done.artifact_error
    assert list(tmp_path.iterdir()) == []


def test_an_artifact_already_in_the_run_is_never_overwritten(tmp_path):
    runs = tmp_path / ".agent_bench" / "runs"
    runs.mkdir(parents=True)
    (runs / "r1.json").write_text("theirs")
    report = {"completed": True, "episode_s": 0.1, "run_id": "r1", "artifact": {"run_id": "r1", "success": True}}
    done = _done(json.dumps(report).encode(), str(runs))
    assert done.artifact is None and "already holds" in done.artifact_error
    assert (runs / "r1.json").read_text() == "theirs"


@pytest.mark.parametrize("replaced", [".agent_bench", "runs"])
def test_an_artifact_is_never_placed_through_a_link_in_a_folders_place(tmp_path, replaced):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run_dir = tmp_path / "run-x"
    (run_dir / ".agent_bench").mkdir(parents=True)
    link = run_dir / ".agent_bench" if replaced == ".agent_bench" else run_dir / ".agent_bench" / "runs"
    if replaced == ".agent_bench":
        (run_dir / ".agent_bench").rmdir()
    link.symlink_to(elsewhere, target_is_directory=True)
    report = {"completed": True, "episode_s": 0.1, "run_id": "r1", "artifact": {"run_id": "r1", "success": True}}
    done = _done(json.dumps(report).encode(), str(run_dir / ".agent_bench" / "runs"))
    assert done.artifact is None and "a link or a file stands in a folder's place" in done.artifact_error
    assert list(elsewhere.rglob("*")) == []


def test_an_artifact_with_no_run_directory_to_go_to_is_a_host_fault_not_the_episodes(tmp_path):
    # the output folder removed or renamed mid-run: the episode did nothing wrong
    report = {"completed": True, "episode_s": 0.1, "run_id": "r1", "artifact": {"run_id": "r1", "success": True}}
    done = _done(json.dumps(report).encode(), str(tmp_path / "gone" / "run-x" / ".agent_bench" / "runs"))
    assert done.artifact is None and done.artifact_error is None
    assert done.host_fault == "cannot place the artifact in the run: No such file or directory"
    assert not (tmp_path / "gone").exists()  # the run directory is never made again by a worker


@pytest.mark.parametrize(
    ("code", "host"),
    [(errno.ENOSPC, True), (errno.EDQUOT, True), (errno.EACCES, True), (errno.EPERM, True), (errno.EROFS, True),
     (errno.EIO, False)],
)  # fmt: skip
def test_a_write_the_host_refuses_leaves_no_half_artifact_and_is_a_host_fault(tmp_path, monkeypatch, code, host):
    def half_then_refused(fd: int, data: bytes) -> None:
        os.write(fd, data[: len(data) // 2])
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(episode_worker, "_write_all", half_then_refused)
    runs = tmp_path / ".agent_bench" / "runs"
    runs.mkdir(parents=True)
    report = {"completed": True, "episode_s": 0.1, "run_id": "r1", "artifact": {"run_id": "r1", "success": True}}
    done = _done(json.dumps(report).encode(), str(runs))
    why = f"cannot place the artifact in the run: {os.strerror(code)}"
    assert done.artifact is None
    assert (done.host_fault, done.artifact_error) == ((why, None) if host else (None, why))
    assert list(runs.iterdir()) == []  # taken back: nothing for the evidence check to find
    assert episode_worker._placed is None


@pytest.mark.slow
def test_a_forked_call_answers_with_a_call_done():
    answer = episode_worker.fork_call(lambda request: {"echo": request["x"]}, {"x": 3, "cwd": "."})
    event = protocol.zygote_events.decode(json.dumps(answer).encode())
    assert isinstance(event, protocol.CallDone) and event.returncode == 0 and event.result == {"echo": 3}


def test_every_command_field_the_worker_reads_is_one_the_harness_sends():
    run = msgspec.json.decode(
        protocol.encoder.encode(
            protocol.Run(
                agent="/a.py",
                agent_label="a.py",
                task_ref="t@1",
                seed=1,
                strict_spec=True,
                scratch_root="/tmp",
                runs_dir="/r",
                log_path="/l",
                output_cap=10,
            )
        )
    )
    # the keys episode_worker reads from a run command
    for key in ("cmd", "agent", "agent_label", "task_ref", "seed", "strict_spec", "scratch_root", "runs_dir", "log_path"):
        assert key in run
    assert run["cmd"] == "run"
    assert msgspec.json.decode(protocol.encoder.encode(protocol.Kill(grace=1.0))) == {"cmd": "kill", "grace": 1.0}


def test_a_message_of_the_wrong_shape_is_refused():
    with pytest.raises(msgspec.ValidationError):
        protocol.worker_events.decode(b'{"event": "done", "returncode": "zero"}')
    with pytest.raises(msgspec.ValidationError):
        protocol.zygote_events.decode(b'{"event": "spawned", "pid": 1, "extra": true}')


def test_the_artifact_size_holds_for_every_kind_of_character():
    """Keys and strings drawn from the code points the two encodings treat differently:
    controls, DEL, Latin-1, line separators, lone surrogates, the BMP's end, beyond it."""
    import random

    pool = [chr(c) for c in [*range(0x100), 0x2028, 0xD800, 0xDFFF, 0xFFFE, 0xFFFF, 0x10000, 0x1F600, 0x10FFFF]]
    draw = random.Random(5)

    def text(most: int) -> str:
        return "".join(draw.choice(pool) for _ in range(draw.randint(0, most)))

    for _ in range(500):
        artifact = {text(6): [text(10), draw.random(), {text(3): None}] for _ in range(3)}
        compact = json.dumps(artifact, ensure_ascii=False)
        assert episode_worker.scaffold_bytes(compact) == len(json.dumps(artifact, sort_keys=True).encode("utf-8"))
