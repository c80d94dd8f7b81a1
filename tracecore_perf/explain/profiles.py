"""Reading the two kinds of profile an instruction run keeps (``run/rundir.py``'s ``profiles/``):

- callgrind's own file of one counted episode: instructions per C function of the
  interpreter, each function's own (self) and with what it called (inclusive);
- the folded stacks of a traced native replay of the same episode
  (``run/episode/pyprofile.py``): bytecodes per Python call stack, from which each Python
  function's own and inclusive bytecodes follow.

Both are read into a :class:`Profile`: ``name -> (self, inclusive)`` and the total."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import msgspec

# callgrind marks a function's recursion levels beyond the first as name'2, name'3, ...
_LEVEL = re.compile(r"'\d+$")
_NAMED = re.compile(r"^\((\d+)\)(?: (.*))?$")


class Profile(msgspec.Struct, kw_only=True):
    """One episode's profile: per function, its own cost and its inclusive cost, in ``unit``."""

    unit: str  # "instructions" (callgrind) or "bytecodes" (the traced replay)
    total: int
    own: dict[str, int]
    inclusive: dict[str, int]
    stacks: dict[str, int] = {}  # folded stacks (bytecodes only): "a;b;c" -> own count of c there


def read_callgrind(path: Path) -> Profile:
    return parse_callgrind(path.read_text(encoding="utf-8", errors="replace"))


def parse_callgrind(text: str) -> Profile:
    """A callgrind output file (``--dump-instr=no``, the one event Ir): each function's own
    instructions, and its inclusive ones from the calls into it. A recursive function's
    inclusive count is the calls into its outermost level from other functions (deeper levels
    run inside it); a function already running when counting began (no call into it was
    seen) gets its own plus what it called."""
    names: dict[str, str] = {}  # compressed name id -> function name (fn= and cfn= share them)
    own: dict[str, int] = defaultdict(int)
    entering: dict[str, int] = defaultdict(int)  # base name -> calls into its first level from others
    outgoing: dict[str, int] = defaultdict(int)  # base name -> calls from any level into other functions
    current = ""
    callee: str | None = None
    after_calls = False
    total = None
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head = line[0]
        if head.isdigit() or head in "+-*":
            cost = _cost(line)
            if after_calls and callee is not None:
                caller_base, callee_base = _base(current), _base(callee)
                if callee_base != caller_base:
                    outgoing[caller_base] += cost
                    if callee == callee_base:
                        entering[callee_base] += cost
                after_calls = False
            else:
                own[_base(current)] += cost
            continue
        key, _, value = line.partition("=")
        if key == "fn":
            current = _name(names, value)
        elif key == "cfn":
            callee = _name(names, value)
        elif key == "calls":
            after_calls = True
        elif line.startswith("summary:"):
            total = int(line.split()[1])
    own = dict(own)
    inclusive = {name: entering.get(name) or own.get(name, 0) + outgoing.get(name, 0) for name in set(own) | set(entering)}
    return Profile(unit="instructions", total=total if total is not None else sum(own.values()), own=own, inclusive=inclusive)


def _cost(line: str) -> int:
    parts = line.split()
    return int(parts[1]) if len(parts) > 1 else 0


def _base(name: str) -> str:
    return _LEVEL.sub("", name)


def _name(names: dict[str, str], value: str) -> str:
    match = _NAMED.match(value)
    if match is None:
        return value
    ident, name = match.groups()
    if name is not None:
        names[ident] = name
    return names.get(ident, f"({ident})")


def read_folded(path: Path) -> Profile:
    return parse_folded(path.read_text(encoding="utf-8", errors="replace"))


def parse_folded(text: str) -> Profile:
    """Folded stacks (``frame;frame;frame count``): a function's own bytecodes are those of the
    stacks it ends, its inclusive ones those of every stack it is in (once per stack)."""
    own: dict[str, int] = defaultdict(int)
    inclusive: dict[str, int] = defaultdict(int)
    stacks: dict[str, int] = {}
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        stacks[stack] = stacks.get(stack, 0) + count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
        total += count
    return Profile(unit="bytecodes", total=total, own=dict(own), inclusive=dict(inclusive), stacks=stacks)
