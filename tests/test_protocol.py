"""The zygote/worker protocol: the harness's Structs (``protocol.py``) and the plain dicts
the episode side (``run/episode/``) builds and reads must agree, field for field. In-process,
no episode."""

from __future__ import annotations

import json

import msgspec
import pytest

from tracecore_perf.run import protocol, spawn
from tracecore_perf.run.episode import constants, role, zygote


def test_both_sides_speak_the_same_protocol_version():
    assert constants.PROTOCOL_VERSION == protocol.PROTOCOL_VERSION
    # the zygote finds the folder of its processes' instruction counts where spawn puts it
    assert constants.CALLGRIND_DIR_ENV == spawn.CALLGRIND_DIR_ENV


class _Recorder(role.Role):
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


@pytest.mark.slow
def test_a_forked_call_answers_with_a_call_done():
    answer = zygote.fork_call(lambda request: {"echo": request["x"]}, {"x": 3, "cwd": "."})
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
    # the keys the worker reads from a run command
    for key in ("cmd", "agent", "agent_label", "task_ref", "seed", "strict_spec", "scratch_root", "runs_dir", "log_path"):
        assert key in run
    assert run["cmd"] == "run"
    assert msgspec.json.decode(protocol.encoder.encode(protocol.Kill(grace=1.0))) == {"cmd": "kill", "grace": 1.0}


def test_a_message_of_the_wrong_shape_is_refused():
    with pytest.raises(msgspec.ValidationError):
        protocol.worker_events.decode(b'{"event": "done", "returncode": "zero"}')
    with pytest.raises(msgspec.ValidationError):
        protocol.zygote_events.decode(b'{"event": "spawned", "pid": 1, "extra": true}')


def test_each_answer_has_a_tag_of_its_own():
    """An episode's ``Done`` and a forked call's ``CallDone`` are told apart by their tag alone."""
    tags = [
        struct.__struct_config__.tag
        for struct in (protocol.Ready, protocol.Warmed, protocol.Logging, protocol.Spawned, protocol.Reaped,
                       protocol.Rehearsed, protocol.CallDone, protocol.Done, protocol.Bye)
    ]  # fmt: skip
    assert len(set(tags)) == len(tags), tags
    with pytest.raises(msgspec.ValidationError):  # a Done is never read where a CallDone is expected
        protocol.zygote_events.decode(b'{"event": "done", "returncode": 0}')
