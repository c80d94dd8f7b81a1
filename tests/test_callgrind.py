"""Instruction counts on the episode side (``run/episode/callgrind.py``): the count file
callgrind wrote as an episode process exited, read or refused, and counts implausibly low for
the CPU an episode used. In-process, no episode."""

from __future__ import annotations

import os
import time

import pytest

from tracecore_perf.run.episode import callgrind
from tracecore_perf.run.episode.state import side

HEADER = (
    "version: 1\ncreator: callgrind-3.19.0\npid: {pid}\npart: {part}\ndesc: Trigger: {trigger}\nevents: Ir\nsummary: {count}\n"
)


def _count_file(folder, name: str, pid: int, count: int, part: int = 1, trigger: str = "Program termination") -> None:
    (folder / name).write_text(HEADER.format(pid=pid, count=count, part=part, trigger=trigger))


def test_a_count_is_read_from_the_summary_line_and_the_file_removed(tmp_path, monkeypatch):
    # the header callgrind writes (totals: also counts frames live at the zeroing, so it is not used)
    _count_file(tmp_path, "callgrind.out.77", 77, 48825954)
    (tmp_path / "callgrind.out.78").write_text("version: 1\npid: 78\ndesc: Trigger: Program termination\n")  # cut short
    monkeypatch.setattr(side, "callgrind_dir", str(tmp_path))
    now = time.time() + 1
    assert callgrind.episode_instructions(77, now) == (48825954, None, None)
    assert callgrind.episode_instructions(78, now)[0] is None
    assert callgrind.episode_instructions(79, now) == (None, "callgrind wrote no count for it", None)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(side, "callgrind_dir", None)  # a native run counts nothing
    assert callgrind.episode_instructions(77, now) == (None, None, None)


def test_a_kept_profile_is_the_count_files_bytes_and_only_a_counts(tmp_path, monkeypatch):
    """explain's evidence: the whole file callgrind wrote, copied with its SHA-256; a file that
    is no count leaves nothing kept."""
    import hashlib

    counts, kept = tmp_path / "counts", tmp_path / "kept"
    counts.mkdir()
    kept.mkdir()
    monkeypatch.setattr(side, "callgrind_dir", str(counts))
    _count_file(counts, "callgrind.out.77", 77, 48825954)
    body = (counts / "callgrind.out.77").read_bytes()
    count, error, sha = callgrind.episode_instructions(77, time.time() + 1, str(kept / "a.callgrind"))
    assert (count, error) == (48825954, None)
    assert (kept / "a.callgrind").read_bytes() == body and sha == hashlib.sha256(body).hexdigest()
    _count_file(counts, "callgrind.out.78", 78, 900, trigger="Client Request")
    count, error, sha = callgrind.episode_instructions(78, time.time() + 1, str(kept / "b.callgrind"))
    assert count is None and sha is None and "dump its counts" in error
    assert sorted(p.name for p in kept.iterdir()) == ["a.callgrind"]


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
    monkeypatch.setattr(side, "callgrind_dir", str(tmp_path))
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
    count, error, _ = callgrind.episode_instructions(50, ended_at)
    assert count is None and says in error, error
    assert list(tmp_path.iterdir()) == []  # the planted files are gone with it


def test_a_count_far_below_what_the_cpu_time_implies_is_no_figure(monkeypatch):
    monkeypatch.setattr(side, "counted_rate", 170e6)
    assert callgrind.implausible_count(36_000_000, 0.35) is None  # a toy episode: 103 M/s
    assert "zeroed or switched off" in callgrind.implausible_count(6_000_000, 0.35)  # ZERO_STATS: -83%
    assert callgrind.implausible_count(100_000, 0.01) is None  # too little CPU to judge
    monkeypatch.setattr(side, "counted_rate", None)
    assert callgrind.implausible_count(6_000_000, 0.35) is None
