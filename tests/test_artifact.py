"""TraceCore's artifact on the worker's side (``run/episode/artifact.py``): the bytes
``persist_run`` writes, on either path (msgspec or the standard library), the size bound, and
the scaffold's size figure. In-process, no episode."""

from __future__ import annotations

import json

import msgspec
import pytest

from tracecore_perf.run.episode import artifact as artifact_side
from tracecore_perf.run.episode import json_codec
from tracecore_perf.run.episode.constants import ARTIFACT_CAP_BYTES
from tracecore_perf.run.episode.state import side

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
    monkeypatch.setattr(side, "reindent", None)  # a zygote without msgspec
    if with_msgspec:
        json_codec.load_reindent()  # what a zygote of the harness's own interpreter does
        assert side.reindent is msgspec.json.format
    assert artifact_side.persist_bytes(artifact) == json.dumps(artifact, ensure_ascii=False, indent=2).encode("utf-8")


@pytest.mark.parametrize("artifact", TRICKY_ARTIFACTS)
def test_a_capped_placement_is_the_same_bytes_on_either_path_and_nothing_past_the_cap(artifact):
    expected = json.dumps(artifact, ensure_ascii=False, indent=2).encode("utf-8")
    compact = json.dumps(artifact, ensure_ascii=False)
    assert artifact_side.persist_bytes_within(artifact, compact, 1 << 30) == expected  # the bound's fast path
    # a cap the bound cannot prove: the standard library's encoder, piece by piece
    assert artifact_side.persist_bytes_within(artifact, compact, len(expected)) == expected
    assert artifact_side.persist_bytes_within(artifact, compact, len(expected) - 1) is None


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
        bound = artifact_side._indented_size_bound(compact, cap)
        assert bound > cap or bound >= size, (cap, bound, size)
    assert artifact_side._indented_size_bound(compact, 4 * size + 1000) <= 4 * size + 1000  # the depth clears it


def test_strings_are_cut_out_piece_by_piece_as_in_one_go():
    import random

    rng = random.Random(3)
    for _ in range(2000):
        kept = bytes(rng.choice(b'"[]') for _ in range(rng.randint(0, 300)))
        kept += b'"' * (kept.count(b'"') % 2)  # every string closed, as json writes them
        whole = b"".join(kept.split(b'"')[0::2])
        assert artifact_side._outside_strings(kept, piece=rng.randint(1, 20)) == whole, kept


def test_an_artifact_indentation_multiplies_is_refused_at_the_cap():
    from tracecore_perf.run.integrity import MAX_ARTIFACT_BYTES

    assert ARTIFACT_CAP_BYTES == MAX_ARTIFACT_BYTES  # what the worker places, the check reads
    bomb = {"x": json.loads("[" * 400 + ",".join(["0"] * 100_000) + "]" * 400)}  # ~80 MB indented
    compact = json.dumps(bomb, ensure_ascii=False)
    assert len(compact) < 1024 * 1024
    assert artifact_side.persist_bytes_within(bomb, compact, ARTIFACT_CAP_BYTES) is None


@pytest.mark.parametrize(
    "artifact", [*TRICKY_ARTIFACTS[:4], TRICKY_ARTIFACTS[5], {"lone": "\ud800 x \udfff", "ключ": "значение 😀"}]
)
def test_the_artifact_size_is_the_scaffolds_figure_without_a_second_encoding(artifact):
    """The scaffold's size, ``len(json.dumps(artifact, sort_keys=True).encode())``, from the
    compact text the worker writes the artifact from (string keys, as a decoded report has)."""
    compact = json.dumps(artifact, ensure_ascii=False)
    assert artifact_side.scaffold_bytes(compact) == len(json.dumps(artifact, sort_keys=True).encode("utf-8"))


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
        assert artifact_side.scaffold_bytes(compact) == len(json.dumps(artifact, sort_keys=True).encode("utf-8"))
